"""Notebook display: a chat as Markdown (one model) or side by side (several), and progress while models work.

Nothing here runs outside a notebook: the ``_repr_*_`` methods are only called by IPython, and progress is shown
only inside a Jupyter kernel.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ._persist import _content_text


def summary(models: list[str], turns: int, tokens: int, cost: float | None) -> str:
    spent = "cost unknown" if cost is None else f"${cost:.6f}"
    return f"{', '.join(models)} · {turns} turn{'s' if turns != 1 else ''} · {tokens:,} tokens · {spent}"


def _tool_lines(message: dict[str, Any]) -> list[str]:
    return [
        f"{(call.get('function') or {}).get('name', '')}({(call.get('function') or {}).get('arguments', '')})"
        for call in message.get("tool_calls") or []
    ]


def conversation_markdown(history: list[dict[str, Any]]) -> str:
    """One model's conversation for a notebook: roles in bold, tool calls and results marked as quotes."""
    blocks = []
    for message in history:
        role, text = message.get("role", ""), _content_text(message.get("content"))
        if role == "tool":
            blocks.append("> **tool result:** " + text.replace("\n", "\n> "))
            continue
        if text:
            blocks.append(f"**{role}:** {text}")
        for line in _tool_lines(message):
            blocks.append(f"> **calls** `{line}`")
    return "\n\n".join(blocks)


def side_by_side_html(histories: dict[str, list[dict[str, Any]]], title: str) -> str:
    """Several models' conversations as one table: a row per user message, a column per model; tool steps folded."""
    import html

    models = list(histories)
    turns: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {}
    for model, history in histories.items():
        current: list[tuple[str, list[dict[str, Any]]]] = []
        for message in history:
            if message.get("role") == "user":
                current.append((_content_text(message.get("content")), []))
            elif current and message.get("role") in ("assistant", "tool"):
                current[-1][1].append(message)
        turns[model] = current
    cell = "style='text-align:left;vertical-align:top;white-space:pre-wrap'"
    rows = [f"<tr><th {cell}>you</th>" + "".join(f"<th {cell}>{html.escape(m)}</th>" for m in models) + "</tr>"]
    for i in range(max((len(t) for t in turns.values()), default=0)):
        question = next((t[i][0] for t in turns.values() if len(t) > i), "")
        cells = [f"<td {cell}>{html.escape(question)}</td>"]
        for model in models:
            cells.append(f"<td {cell}>{_answer_html(turns[model][i][1]) if len(turns[model]) > i else ''}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div><p>{html.escape(title)}</p><table>{''.join(rows)}</table></div>"


def _answer_html(messages: list[dict[str, Any]]) -> str:
    import html

    steps = []
    for message in messages[:-1]:
        if message.get("role") == "tool":
            steps.append(f"result: {_content_text(message.get('content'))}")
        else:
            steps.extend(f"calls {line}" for line in _tool_lines(message))
    final = _content_text(messages[-1].get("content")) if messages else ""
    folded = (
        f"<details><summary>{len(steps)} tool step{'s' if len(steps) != 1 else ''}</summary>"
        f"{html.escape(chr(10).join(steps))}</details>"
        if steps
        else ""
    )
    return folded + html.escape(final)


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not in a terminal IPython, not in a script)."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class Progress:
    """One updating line while several models work: who is done, who is still thinking."""

    def __init__(self, models: list[str], show: Callable[[str, bool], None] | None = None) -> None:
        self.models = models
        self.done: list[str] = []
        self.start = time.monotonic()
        self._show = show or _notebook_show()
        self._show(self.line(), False)

    def line(self) -> str:
        waiting = [m for m in self.models if m not in self.done]
        seconds = time.monotonic() - self.start
        if not waiting:
            return f"✓ {len(self.models)} models answered in {seconds:.1f} s"
        return f"⏳ {len(self.done)}/{len(self.models)} answered ({seconds:.1f} s); waiting for {', '.join(waiting)}"

    def finished(self, model: str, answered: bool = True) -> None:
        """``model``'s turn ended (``answered`` or failed: either way it is done)."""
        self.done.append(model)
        self._show(self.line(), True)


def _notebook_show() -> Callable[[str, bool], None]:
    from IPython.display import display

    handle = display({"text/plain": ""}, raw=True, display_id=True)  # type: ignore[no-untyped-call]

    def show(text: str, update: bool) -> None:
        if handle is not None:
            handle.update({"text/plain": text}, raw=True)

    return show
