"""Context windows: does a request fit its model, and which old turns go when it does not. Pure, no I/O.

The estimate is `estimate_prompt_tokens` (the ledger's, so budgets and context checks agree); the window is the
catalog's ``context_length``. A request fits when its estimated prompt plus the ``max_tokens`` it asks for (0
when it asks for none) is within the window. A model whose window is unknown is never checked.

Dropping (``on_overflow="drop_oldest"``, and ``"summarize"`` before it summarises) removes whole turns from the
oldest: a turn is a user message and everything after it up to the next user message (the answer, its tool calls
and their results), so no assistant tool call is ever left without its results and no turn is cut in half. The
leading system prompt always stays, and so does the turn under way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._ledger import CHARS_PER_TOKEN, estimate_prompt_tokens
from .errors import ContextWindowError

POLICIES = ("drop_oldest", "summarize")
SUMMARY_MAX_TOKENS = 1024
"""The longest summary asked for (``max_tokens`` of the summarising request), in a large window."""


def summary_tokens(limit: int) -> int:
    """The ``max_tokens`` of the summary for a window of ``limit`` tokens: an eighth of it, at most
    `SUMMARY_MAX_TOKENS`. Twice as many estimated tokens are kept free for it (the estimate errs high)."""
    return max(16, min(SUMMARY_MAX_TOKENS, limit // 8))


SUMMARY_PREFIX = "Summary of the earlier part of this conversation (those messages were removed to make room):"
SUMMARY_PROMPT = (
    "Summarise the conversation below for the assistant who continues it, who will not see it again. Keep every "
    "fact, decision, name, number, file, tool result and open question that may matter later; drop pleasantries. "
    "Write plain prose or short bullet points, in the conversation's language, at most a few hundred words.\n\n"
)


def check_policy(value: Any) -> str | None:
    if value is not None and value not in POLICIES:
        raise ValueError(f"on_overflow must be 'drop_oldest', 'summarize' or None (raise), got {value!r}")
    return value  # type: ignore[no-any-return]


def needed(body: Mapping[str, Any]) -> tuple[int, int]:
    """``(estimated prompt tokens, completion tokens asked for)`` of a request body."""
    asked = body.get("max_tokens", body.get("max_completion_tokens"))
    output = asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 0
    return estimate_prompt_tokens(body), output


def overflow_error(model: str, prompt: int, output: int, limit: int) -> ContextWindowError:
    asked = f" plus max_tokens={output:,}" if output else ""
    return ContextWindowError(
        f"The request to {model} does not fit its context window: about {prompt:,} prompt tokens (irouter's "
        f"estimate){asked}, and the model takes {limit:,}. Not sent. Start a new chat, shorten the messages, pass "
        "on_overflow='drop_oldest' or 'summarize' to the chat, or fallbacks=[...] with a larger model.",
        estimate=prompt + output,
        limit=limit,
        model=model,
    )


def check_fits(model: str, body: Mapping[str, Any], limit: int | None) -> None:
    """Raise `ContextWindowError` (before sending) when ``body`` cannot fit a window of ``limit`` tokens."""
    if not limit:
        return
    prompt, output = needed(body)
    if prompt + output > limit:
        raise overflow_error(model, prompt, output, limit)


def split_turns(history: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """``(head, turns)``: the leading system/developer messages, then the rest cut before every user message."""
    head_end = 0
    while head_end < len(history) and history[head_end].get("role") in ("system", "developer"):
        head_end += 1
    turns: list[list[dict[str, Any]]] = []
    for message in history[head_end:]:
        if message.get("role") == "user" or not turns:
            turns.append([])
        turns[-1].append(message)
    return list(history[:head_end]), turns


@dataclass
class Fit:
    """What a turn starts from after making room: the history it sends, and the messages left out (oldest first)."""

    history: list[dict[str, Any]]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    summary_tokens: int = 0
    """The ``max_tokens`` of the summary that takes the dropped turns' place (``on_overflow="summarize"``)."""


def make_room(
    model: str,
    history: Sequence[dict[str, Any]],
    measure: Callable[[list[dict[str, Any]]], tuple[int, int]],
    limit: int,
    keep_last: bool,
    room: int = 0,
) -> Fit:
    """Drop the oldest whole turns of ``history`` until the request fits a window of ``limit`` tokens, as
    ``measure(history)`` (see `needed`) says, with ``room`` tokens kept free once anything is dropped (for a
    summary). ``keep_last`` keeps the last turn (one under way: its calls wait for the results being sent).
    Raises `ContextWindowError` when even the shortest history does not fit."""
    head, turns = split_turns(history)
    movable = len(turns) - 1 if keep_last and turns else len(turns)
    prompt = output = 0
    for cut in range(movable + 1):
        kept = [*head, *(m for turn in turns[cut:] for m in turn)]
        prompt, output = measure(kept)
        if prompt + output + (room if cut else 0) <= limit:
            return Fit(kept, [m for turn in turns[:cut] for m in turn])
    raise overflow_error(model, prompt + (room if movable else 0), output, limit)


def transcript(messages: Sequence[dict[str, Any]]) -> str:
    """The dropped messages as plain text for the summarising model: one ``role: text`` block per message, tool
    calls as their name and arguments."""

    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(
                p.get("text", "") if p.get("type") == "text" else f"[{p.get('type')}]"
                for p in content
                if isinstance(p, dict)
            )
        text = str(content or "")
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            text += f"\n[calls {function.get('name')}({function.get('arguments')})]"
        lines.append(f"{message.get('role')}: {text}".strip())
    return "\n\n".join(lines)


def summary_request(dropped: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The user message asking for a summary of ``dropped``."""
    return {"role": "user", "content": SUMMARY_PROMPT + transcript(dropped)}


def summary_message(text: str) -> dict[str, Any]:
    """The message that stands for the dropped turns in history."""
    return {"role": "user", "content": f"{SUMMARY_PREFIX}\n\n{text.strip()}"}


def with_summary(fit: Fit, text: str) -> list[dict[str, Any]]:
    """``fit.history`` with the summary placed after the system prompt. A summary longer than the room kept for it
    (a server that ignores ``max_tokens``) is cut to that room, so the request still fits."""
    head, turns = split_turns(fit.history)
    room = max(0, 2 * fit.summary_tokens * CHARS_PER_TOKEN - len(SUMMARY_PREFIX) - 8)
    return [*head, summary_message(text.strip()[:room]), *(m for turn in turns for m in turn)]
