"""Compatibility with irouter 0.3.x: the names its docs showed keep working, as thin wrappers over today's code.

``from irouter.base import get_all_models, history_to_markdown, BASE_URL`` and the helpers below behave as they
did. New code should not need them: messages take paths, URLs and bytes directly (see `irouter.Chat`).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from ._content import DOWNLOAD_LIMIT, DOWNLOAD_TIMEOUT, _string_kind
from ._engine import FINAL_PROMPT as TOOL_LOOP_FINAL_PROMPT
from ._persist import history_to_markdown
from ._transport import ATTRIBUTION_HEADERS as BASE_HEADERS
from ._transport import OPENROUTER_BASE_URL as BASE_URL
from .catalog import get_all_models

__all__ = [
    "BASE_HEADERS",
    "BASE_URL",
    "TOOL_LOOP_FINAL_PROMPT",
    "detect_content_type",
    "download_and_encode_url",
    "encode_base64",
    "get_all_models",
    "history_to_markdown",
]

_KINDS = {
    "image": ("image_url", "local_image"),
    "pdf": ("pdf_url", "local_pdf"),
    "audio": ("audio_url", "local_audio"),
    "video": ("video_url", "local_video"),
}


def detect_content_type(item: Any) -> str:
    """How a message item would be sent, in 0.3.1's words: ``"text"``, ``"image_url"``, ``"local_image"``,
    ``"pdf_url"``, ``"local_pdf"``, ``"audio_url"``, ``"local_audio"`` (and, new since, ``"video_url"`` /
    ``"local_video"``). URLs include ``data:`` URLs. Like 0.3.1, a missing file named with a known extension
    raises ``FileNotFoundError``; non-strings are ``"text"``."""
    if not isinstance(item, str):
        return "text"
    kind = _string_kind(item)
    if kind is None:
        return "text"
    url, local = _KINDS[kind]
    return url if item.strip().lower().startswith(("http://", "https://", "data:")) else local


def encode_base64(path: str | os.PathLike[str]) -> str:
    """A file's bytes as base64 text."""
    with open(path, "rb") as file:
        return base64.b64encode(file.read()).decode("ascii")


def download_and_encode_url(url: str) -> str:
    """Download ``url`` (http or https, at most 25 MB, within 30 s) and return its bytes as base64 text.

    Raises `AttachmentError` when the download fails."""
    from ._transport import download

    return base64.b64encode(download(url, max_bytes=DOWNLOAD_LIMIT, timeout=DOWNLOAD_TIMEOUT)).decode("ascii")
