"""History checks, saved chats and Markdown views: plain JSON in, plain JSON out."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROLES = ("system", "developer", "user", "assistant", "tool")
FORMAT = "irouter.chat/1"


def check_history(history: Any, where: str = "history") -> list[dict[str, Any]]:
    """A copy of ``history`` if it is a valid list of OpenAI-format messages; ``TypeError``/``ValueError`` naming
    the first problem otherwise."""
    if not isinstance(history, (list, tuple)):
        raise TypeError(f"{where} must be a list of message dicts, got {type(history).__name__}")
    checked = []
    for i, message in enumerate(history):
        at = f"{where}[{i}]"
        if not isinstance(message, Mapping):
            raise TypeError(
                f"{at} must be a dict like {{'role': 'user', 'content': '...'}}, got {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{at} has role {role!r}; roles are {', '.join(ROLES)}")
        content = message.get("content")
        if role == "assistant":
            if content is None and not message.get("tool_calls"):
                raise ValueError(f"{at} is an assistant message with neither 'content' nor 'tool_calls'")
        elif "content" not in message:
            raise ValueError(f"{at} ({role}) has no 'content'")
        if content is not None and not isinstance(content, (str, list)):
            raise TypeError(
                f"{at}['content'] must be a string or a list of content parts, got {type(content).__name__}"
            )
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ValueError(f"{at} is a tool message without a 'tool_call_id'")
        try:
            json.dumps(message)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{at} is not plain JSON data ({exc}); history must be JSON-ready") from None
        checked.append(dict(message))
    return checked


def jsonable_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the options that survive JSON, the names of those that do not: functions, types, hooks)."""
    kept, dropped = {}, []
    for key, value in options.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, sorted(dropped)


def dumps(data: Mapping[str, Any]) -> str:
    """The saved form: stable (sorted keys where order carries no meaning is not needed: dict order is kept),
    indented, UTF-8 friendly."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def write_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename: a crash never leaves
    half a file, and readers see the old or the new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------------------------- markdown


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    pieces = []
    for part in content or []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            pieces.append(part.get("text", ""))
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            pieces.append("[image]" if url.startswith("data:") else f"[image: {url}]")
        elif kind == "file":
            pieces.append(f"[file: {(part.get('file') or {}).get('filename') or 'document'}]")
        elif kind == "input_audio":
            pieces.append(f"[audio: {(part.get('input_audio') or {}).get('format', '')}]")
        elif kind == "video_url":
            pieces.append(f"[video: {(part.get('video_url') or {}).get('url', '')}]")
    return "\n".join(p for p in pieces if p)


def messages_to_markdown(history: list[dict[str, Any]]) -> str:
    names = {}
    blocks = []
    for message in history:
        role = message.get("role", "")
        text = _content_text(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                names[call.get("id")] = function.get("name", "")
                calls.append(f"`{function.get('name', '')}({function.get('arguments', '')})`")
            head = f"**Assistant:** {text}\n\n" if text else ""
            blocks.append(head + f"**Assistant** calls {', '.join(calls)}")
            continue
        if role == "tool":
            blocks.append(f"**Tool ({names.get(message.get('tool_call_id'), 'result')}):** {text}")
            continue
        blocks.append(f"**{role.capitalize()}:** {text}")
    return "\n\n".join(blocks)


def history_to_markdown(history: Any) -> str:
    """A conversation as Markdown: ``**User:** ...``, ``**Assistant:** ...``, tool calls and their results.

    Takes ``chat.history`` for one model (a list) or for several (``{slug: list}``, one section per model), or a
    `Chat` itself.
    """
    history = getattr(history, "history", history)
    if isinstance(history, Mapping):
        return "\n\n".join(f"## {slug}\n\n{messages_to_markdown(list(h))}" for slug, h in history.items())
    return messages_to_markdown(list(history))
