"""What replies carry besides text: generated images and web citations, read out of history."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


@dataclass(frozen=True)
class GeneratedImage:
    """An image a model made. ``url`` is what the server sent (normally a ``data:`` URL)."""

    url: str

    @property
    def mime(self) -> str | None:
        """``image/png`` and the like, for ``data:`` URLs."""
        return self.url[5 : self.url.index(";")] if self.url.startswith("data:") and ";" in self.url else None

    @property
    def data(self) -> bytes:
        """The decoded image bytes (``ValueError`` for a plain http(s) URL: download it yourself)."""
        if not self.url.startswith("data:"):
            raise ValueError(f"This image is a link, not embedded data: {self.url}")
        return base64.b64decode(self.url.split(",", 1)[1])

    def save(self, path: str | Path) -> Path:
        """Write the image to ``path`` (a file, or a directory to put ``image.<ext>`` in) and return the path."""
        target = Path(path)
        if target.is_dir():
            target = target / f"image{_EXTENSIONS.get(self.mime or '', '.png')}"
        target.write_bytes(self.data)
        return target

    def _repr_png_(self) -> bytes | None:
        return self.data if self.mime == "image/png" else None

    def _repr_jpeg_(self) -> bytes | None:
        return self.data if self.mime == "image/jpeg" else None

    def __repr__(self) -> str:
        shown = self.url if len(self.url) < 60 else f"{self.url[:40]}...({len(self.url)} chars)"
        return f"GeneratedImage({shown!r})"


def images_in(history: Iterable[dict[str, Any]]) -> list[GeneratedImage]:
    """Every image the assistant made in a history, oldest first."""
    found = []
    for message in history:
        if message.get("role") == "assistant":
            for image in message.get("images") or []:
                url = (image.get("image_url") or {}).get("url") if isinstance(image, dict) else None
                if url:
                    found.append(GeneratedImage(url))
    return found


def citations_in(history: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The web citations of a history's assistant messages (url, title, content; no character indexes)."""
    found = []
    for message in history:
        if message.get("role") != "assistant":
            continue
        for note in message.get("annotations") or []:
            if isinstance(note, dict) and note.get("type") == "url_citation":
                cite = note.get("url_citation") or {}
                found.append({k: v for k, v in cite.items() if k not in ("start_index", "end_index")})
    return found


def last_reasoning(history: list[dict[str, Any]]) -> str | None:
    """The reasoning text of the last assistant message, if the model sent any."""
    for message in reversed(history):
        if message.get("role") == "assistant":
            reasoning = message.get("reasoning")
            return reasoning if isinstance(reasoning, str) and reasoning else None
    return None
