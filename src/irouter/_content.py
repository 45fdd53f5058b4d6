"""What the user passed as a message -> OpenAI message content (a string or a list of content parts)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def to_content(message: Any) -> str | list[dict[str, Any]]:
    """A user message's ``content``: a string stays a string; a list becomes content parts.

    In a list, strings become ``{"type": "text", "text": ...}`` parts and dicts (ready-made content parts) pass
    through untouched. Raises ``TypeError``/``ValueError`` before any request for anything else.
    """
    if isinstance(message, str):
        if not message.strip():
            raise ValueError("message is empty: pass the text to send, e.g. chat('Hello!')")
        return message
    if isinstance(message, (list, tuple)):
        if not message:
            raise ValueError("message is an empty list: pass at least one text or attachment")
        return [_part(item, i) for i, item in enumerate(message)]
    raise TypeError(f"message must be a string or a list of strings/content parts, got {type(message).__name__}")


def _part(item: Any, index: int) -> dict[str, Any]:
    if isinstance(item, str):
        return {"type": "text", "text": item}
    if isinstance(item, Mapping):
        if "type" not in item:
            raise ValueError(
                f"message[{index}] is a dict without a 'type' key; content parts look like "
                "{'type': 'text', 'text': '...'}"
            )
        return dict(item)
    raise TypeError(f"message[{index}] must be a string or a content-part dict, got {type(item).__name__}")


def is_message_list(message: Any) -> bool:
    """True for a list of ready-made message dicts (``[{'role': 'user', 'content': ...}, ...]``)."""
    return (
        isinstance(message, (list, tuple))
        and bool(message)
        and all(isinstance(m, Mapping) and "role" in m for m in message)
    )
