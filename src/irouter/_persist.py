"""History checks, saved chats and Markdown views: plain JSON in, plain JSON out."""

from __future__ import annotations

import dataclasses
import json
import math
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
    waiting: tuple[int, list[Any]] | None = None
    """The last assistant message's tool calls that no tool message has answered yet (its index, their ids)."""
    for i, message in enumerate(history):
        at = f"{where}[{i}]"
        if not isinstance(message, Mapping):
            raise TypeError(
                f"{at} must be a dict like {{'role': 'user', 'content': '...'}}, got {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            raise ValueError(f"{at} has role {role!r}; roles are {', '.join(ROLES)}")
        if role == "tool" and waiting is not None:
            waiting[1][:] = [c for c in waiting[1] if c != message.get("tool_call_id")]
        elif waiting is not None and waiting[1]:
            raise ValueError(
                f"{at} comes after tool calls of {where}[{waiting[0]}] that have no result ({waiting[1]}): servers "
                "refuse such a history. Give each call a tool message with its tool_call_id, or drop the calls; "
                "calls may wait for results only at the end (see answer_tool_calls)"
            )
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
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise TypeError(f"{at}['content'][{j}] must be a content part like {{'type': 'text', ...}}")
        if "tool_calls" in message and role == "assistant":
            _check_tool_calls(message["tool_calls"], f"{at}['tool_calls']")
        if role == "assistant":
            waiting = (i, [c.get("id") for c in message.get("tool_calls") or []])
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise ValueError(f"{at} is a tool message without a 'tool_call_id'")
        try:
            json.dumps(message)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{at} is not plain JSON data ({exc}); history must be JSON-ready") from None
        checked.append(dict(message))
    return checked


SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "cookie", "credential", "signature")
"""A header whose name contains one of these (any case) carries a secret: ``Authorization``, ``X-Api-Key``,
``Api-Key``, ``Cookie``, ``X-Auth-Token``... Saved chats leave its value out."""


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_HEADER_WORDS)


def _check_tool_calls(calls: Any, where: str) -> None:
    """OpenAI's shape: ``[{'id': str, 'type': 'function', 'function': {'name': str, 'arguments': str}}]``."""
    if calls is None:
        return
    if not isinstance(calls, list):
        raise TypeError(f"{where} must be a list of tool calls, got {type(calls).__name__}")
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, Mapping) else None
        if (
            not isinstance(call, Mapping)
            or not isinstance(call.get("id"), str)
            or not isinstance(function, Mapping)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str)
        ):
            raise TypeError(
                f"{where}[{i}] must be a tool call like {{'id': 'call_1', 'type': 'function', "
                "'function': {'name': 'f', 'arguments': '{}'}}"
            )


def jsonable_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the options that can be saved, the names of those that cannot: functions, types, hooks, and secret headers
    of ``extra_headers``, named ``"extra_headers['Authorization']"``)."""
    kept, dropped = {}, []
    for key, value in options.items():
        if key == "extra_headers" and isinstance(value, Mapping):
            secret = [name for name in value if is_secret_header(str(name))]
            dropped += [f"extra_headers[{name!r}]" for name in secret]
            value = {name: v for name, v in value.items() if name not in secret}
            if not value and secret:
                continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            dropped.append(key)
        else:
            kept[key] = value
    return kept, sorted(dropped)


def merge_saved_options(saved: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Saved options with the ones given on loading on top; ``extra_headers`` merge (the secret headers left out
    of the file are given again without repeating the others)."""
    merged = {**saved, **given}
    if isinstance(saved.get("extra_headers"), Mapping) and isinstance(given.get("extra_headers"), Mapping):
        merged["extra_headers"] = {**saved["extra_headers"], **given["extra_headers"]}
    return merged


# --------------------------------------------------------------------------------------------- loading


def check_saved(data: Any) -> dict[str, Any]:
    """Saved-chat data (`Chat.to_dict`'s shape) checked field by field, before anything is built from it: a copy
    with defaults filled in, or ``ValueError`` naming the field (``ledger[2]['cost']``) and what it must be."""
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ValueError(f"Not a saved irouter chat (expected format {FORMAT!r})")
    models = data.get("models")
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m.strip() for m in models):
        raise ValueError(f"Saved chat: 'models' must be a non-empty list of model slugs, got {models!r}")
    checked: dict[str, Any] = {"models": list(models)}
    for field, kinds, what in (
        ("system", (str,), "a string or null"),
        ("base_url", (str,), "a URL string or null"),
        ("max_cost", (int, float), "a non-negative number or null"),
        ("max_total_tokens", (int,), "a non-negative whole number or null"),
    ):
        value = data.get(field)
        if value is not None and (not _is(value, kinds) or (kinds != (str,) and not 0 <= value < math.inf)):
            raise ValueError(f"Saved chat: {field!r} must be {what}, got {value!r}")
        checked[field] = value
    allow_unpriced = data.get("allow_unpriced", False)
    if not isinstance(allow_unpriced, bool):
        raise ValueError(f"Saved chat: 'allow_unpriced' must be true or false, got {allow_unpriced!r}")
    checked["allow_unpriced"] = allow_unpriced
    checked["options"] = _mapping(data, "options")
    unsaved = data.get("unsaved_options") or []
    if not isinstance(unsaved, list) or not all(isinstance(u, str) for u in unsaved):
        raise ValueError(f"Saved chat: 'unsaved_options' must be a list of option names, got {unsaved!r}")
    history = _mapping(data, "history")
    unknown = [m for m in history if m not in models]
    if unknown:
        raise ValueError(f"Saved chat: 'history' names models that are not in 'models' ({models}): {unknown}")
    checked["history"] = {m: _history(h, f"history[{m!r}]") for m, h in history.items()}
    usage = _mapping(data, "usage")  # usage and cost are summaries of the ledger, which may name earlier models
    for model, counts in usage.items():
        if not isinstance(counts, Mapping) or not all(_count(v) for v in counts.values()):
            raise ValueError(f"Saved chat: usage[{model!r}] must map token counts to whole numbers, got {counts!r}")
    cost = _mapping(data, "cost")
    for model, value in cost.items():
        if value is not None and not _number(value):
            raise ValueError(f"Saved chat: cost[{model!r}] must be a number of dollars or null, got {value!r}")
    ledger = data.get("ledger") or []
    if not isinstance(ledger, list):
        raise ValueError(f"Saved chat: 'ledger' must be a list of requests, got {type(ledger).__name__}")
    checked["ledger"] = [check_entry(entry, f"ledger[{i}]") for i, entry in enumerate(ledger)]
    return checked


def check_entry(entry: Any, where: str) -> Any:
    """A `LedgerEntry` from its saved dict, every field of the type its annotation says."""
    from ._ledger import LedgerEntry

    if not isinstance(entry, Mapping):
        raise ValueError(f"Saved chat: {where} must be an object, got {type(entry).__name__}")
    fields = {f.name: f for f in dataclasses.fields(LedgerEntry)}
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise ValueError(f"Saved chat: {where} has unknown fields {unknown}; a ledger entry has {sorted(fields)}")
    for name, spec in fields.items():
        if name not in entry:
            if spec.default is dataclasses.MISSING:
                raise ValueError(f"Saved chat: {where} has no {name!r}")
            continue
        kinds = str(spec.type).replace(" ", "").split("|")
        if not any(_fits(entry[name], kind) for kind in kinds):
            raise ValueError(
                f"Saved chat: {where}[{name!r}] must be {' or '.join(_KIND_NAMES.get(k, k) for k in kinds)}, "
                f"got {entry[name]!r}"
            )
    return LedgerEntry(**entry)


_KIND_NAMES = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true/false", "None": "null"}


def _fits(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return _count(value)
    if kind == "float":
        return _number(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "None":
        return value is None
    return True  # a type this check does not know: any JSON value


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    """A finite number (JSON's, so never a bool or a string)."""
    return _is(value, (int, float)) and math.isfinite(value)


def _count(value: Any) -> bool:
    return _is(value, (int,)) and value >= 0


def _mapping(data: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"Saved chat: {field!r} must be an object keyed by name, got {type(value).__name__}")
    return value


def _history(history: Any, where: str) -> list[dict[str, Any]]:
    try:
        return check_history(history, f"Saved chat: {where}")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


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
