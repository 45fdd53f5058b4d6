"""What the user passed as a message -> OpenAI message content (a string or a list of content parts).

A message is a string, or a list mixing texts, attachments and ready-made content-part dicts. Attachments are
paths (``str`` or ``pathlib.Path``), http(s) URLs, ``data:`` URLs, raw ``bytes``, or the explicit wrappers `Image`,
`PDF`, `Audio` and `Video` for when guessing would be wrong.

How a string is read, in order:

1. a ``data:`` URL -> by its MIME type;
2. an http(s) URL without spaces whose path ends in a known extension -> that kind (other URLs stay text);
3. the name of an existing file with a known extension (or whose bytes are recognisable) -> that file;
4. a single token without spaces ending in a known extension -> a file that must exist: ``FileNotFoundError``
   names it, before any request;
5. anything else is text ("Summarise report.pdf please" is text).

Files are read and encoded once per turn; the parts are shared by every model of a fan-out and kept in history,
so later turns resend them without reading the file again.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from .errors import AttachmentError

IMAGE_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
}
AUDIO_TYPES = {
    ".wav": "wav",
    ".mp3": "mp3",
    ".flac": "flac",
    ".ogg": "ogg",
    ".oga": "ogg",
    ".m4a": "m4a",
    ".aac": "aac",
    ".aiff": "aiff",
    ".aif": "aiff",
}
VIDEO_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".mpeg": "video/mpeg",
    ".mpg": "video/mpeg",
}
PDF_TYPES = {".pdf": "application/pdf"}
KNOWN_EXTENSIONS = {*IMAGE_TYPES, *AUDIO_TYPES, *VIDEO_TYPES, *PDF_TYPES}
AUDIO_MIME = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "m4a": "audio/mp4",
    "aac": "audio/aac",
    "aiff": "audio/aiff",
}
MIME_AUDIO = {
    **{v: k for k, v in AUDIO_MIME.items()},
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/x-flac": "flac",
    "audio/x-m4a": "m4a",
    "audio/m4a": "m4a",
    "audio/x-aiff": "aiff",
}

DOWNLOAD_LIMIT = 25 * 1024 * 1024
"""Bytes irouter downloads at most for one audio URL (OpenRouter takes audio as base64 only)."""
DOWNLOAD_TIMEOUT = 30.0


# --------------------------------------------------------------------------------------------- sniffing


def sniff(data: bytes) -> tuple[str, str] | None:
    """(kind, mime) from a file's first bytes: kind is ``image``, ``pdf``, ``audio`` or ``video``; ``None`` when
    unrecognised. Audio MIME types are reported as irouter's format names' MIME types."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image", "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image", "image/webp"
    if head.startswith(b"%PDF-"):
        return "pdf", "application/pdf"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio", "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio", "audio/flac"
    if head.startswith(b"OggS"):
        return "audio", "audio/ogg"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio", "audio/aiff"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio", "audio/mpeg"
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return "audio", "audio/aac"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return "audio", "audio/mp4"
        return "video", "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video", "video/webm"
    return None


# --------------------------------------------------------------------------------------------- wrappers


@dataclass(frozen=True)
class Attachment:
    """Base of the explicit wrappers: ``source`` is a path, an http(s) or ``data:`` URL, or bytes."""

    source: str | os.PathLike[str] | bytes
    kind: ClassVar[str] = ""

    def part(self) -> dict[str, Any]:
        return _part_of_kind(self.kind, self.source, self)


@dataclass(frozen=True)
class Image(Attachment):
    """An image (jpeg, png, webp, gif). ``detail`` is ``"auto"``, ``"low"`` or ``"high"``; ``mime`` overrides the
    type for bytes or extension-less paths."""

    detail: str | None = None
    mime: str | None = None
    kind: ClassVar[str] = "image"


@dataclass(frozen=True)
class PDF(Attachment):
    """A PDF document. ``filename`` is what the model is told the file is called."""

    filename: str | None = None
    kind: ClassVar[str] = "pdf"


@dataclass(frozen=True)
class Audio(Attachment):
    """A sound file (wav, mp3, flac, ogg, m4a, aac, aiff). URLs are downloaded by irouter (OpenRouter takes audio
    as base64 only). ``format`` overrides the detected one."""

    format: str | None = None
    max_bytes: int = DOWNLOAD_LIMIT
    """For URLs: the most bytes irouter downloads before giving up with `AttachmentError`."""
    timeout: float = DOWNLOAD_TIMEOUT
    """For URLs: seconds the download may take in total."""
    kind: ClassVar[str] = "audio"


@dataclass(frozen=True)
class Video(Attachment):
    """A video, by URL (or a path/bytes sent as a ``data:`` URL)."""

    mime: str | None = None
    kind: ClassVar[str] = "video"


# --------------------------------------------------------------------------------------------- detection


def to_content(message: Any) -> str | list[dict[str, Any]]:
    """A user message's ``content``: a plain string stays a string; anything else becomes content parts.

    Raises ``TypeError``/``ValueError`` (``FileNotFoundError`` for a named file that is missing,
    `AttachmentError` for an attachment that cannot be used) before any request.
    """
    if isinstance(message, str):
        if not message.strip():
            raise ValueError("message is empty: pass the text to send, e.g. chat('Hello!')")
        kind = _string_kind(message)
        return message if kind is None else [_string_part(message, kind)]
    if isinstance(message, (list, tuple)):
        if not message:
            raise ValueError("message is an empty list: pass at least one text or attachment")
        return [_part(item, i) for i, item in enumerate(message)]
    if isinstance(message, (bytes, os.PathLike, Attachment)):
        return [_part(message, 0)]
    raise TypeError(f"message must be a string or a list of texts and attachments, got {type(message).__name__}")


def _part(item: Any, index: int) -> dict[str, Any]:
    if isinstance(item, str):
        kind = _string_kind(item)
        return {"type": "text", "text": item} if kind is None else _string_part(item, kind)
    if isinstance(item, Attachment):
        return item.part()
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
        found = sniff(data)
        if found is None:
            raise AttachmentError(
                f"message[{index}]: cannot tell what kind of file these {len(data)} bytes are; wrap them as "
                "Image(...), PDF(...), Audio(format=...) or Video(...)"
            )
        return _part_of_kind(found[0], data, None)
    if isinstance(item, os.PathLike):
        path = Path(item)
        return _part_of_kind(_path_kind(path, index) or "", path, None)
    if isinstance(item, Mapping):
        if "type" not in item:
            raise ValueError(
                f"message[{index}] is a dict without a 'type' key; content parts look like "
                "{'type': 'text', 'text': '...'}"
            )
        return dict(item)
    raise TypeError(
        f"message[{index}] must be a string, a path, bytes, an Image/PDF/Audio/Video or a content-part dict, "
        f"got {type(item).__name__}"
    )


def _extension(path: str) -> str:
    return PurePosixPath(path).suffix.lower()


def _missing(path: Path) -> OSError:
    if path.is_dir():
        return IsADirectoryError(f"{str(path)!r} is a folder; attach the files in it one by one")
    return FileNotFoundError(f"No such file: {str(path)!r}")


def _kind_of_extension(ext: str) -> str | None:
    for kind, table in (("image", IMAGE_TYPES), ("pdf", PDF_TYPES), ("audio", AUDIO_TYPES), ("video", VIDEO_TYPES)):
        if ext in table:
            return kind
    return None


def _string_kind(text: str) -> str | None:
    """What a string in a message is: ``None`` for text, else ``image``/``pdf``/``audio``/``video``."""
    stripped = text.strip()
    if stripped.startswith("data:") and ";base64," in stripped[:100] and " " not in stripped:
        return _data_url_kind(stripped)
    if any(c.isspace() for c in stripped):
        return _path_kind(Path(stripped), None, quiet=True) if os.path.isfile(stripped) else None
    scheme = urlsplit(stripped).scheme.lower()
    if scheme in ("http", "https"):
        return _kind_of_extension(_extension(unquote(urlsplit(stripped).path)))
    ext = _extension(stripped)
    if os.path.isfile(stripped):
        return _path_kind(Path(stripped), None, quiet=True)
    if ext in KNOWN_EXTENSIONS and len(stripped) > len(ext):
        raise FileNotFoundError(
            f"No such file: {stripped!r}. To send it as text, put it in a sentence or wrap it in "
            "{'type': 'text', 'text': ...}"
        )
    return None


def _data_url_kind(url: str) -> str | None:
    mime = url[5 : url.index(";")].lower()
    if mime.startswith("image/"):
        return "image"
    if mime == "application/pdf":
        return "pdf"
    if mime.startswith("audio/"):
        return "audio"
    if mime.startswith("video/"):
        return "video"
    return None


def _path_kind(path: Path, index: int | None = None, quiet: bool = False) -> str | None:
    """The kind of an existing file, by extension or else by its first bytes (``None`` if unknown and quiet)."""
    if not path.is_file():
        raise _missing(path)
    kind = _kind_of_extension(path.suffix.lower())
    if kind is None:
        with path.open("rb") as handle:
            found = sniff(handle.read(16))
        kind = found[0] if found else None
    if kind is None and not quiet:
        where = f"message[{index}]: " if index is not None else ""
        raise AttachmentError(
            f"{where}{str(path)!r} is not a file type irouter knows (images, PDF, audio, video); wrap it as "
            "Image(...), PDF(...), Audio(format=...) or Video(...)"
        )
    return kind


def _string_part(text: str, kind: str) -> dict[str, Any]:
    return _part_of_kind(kind, text.strip(), None)


# --------------------------------------------------------------------------------------------- parts


def _part_of_kind(kind: str, source: Any, wrapper: Attachment | None) -> dict[str, Any]:
    if kind == "image":
        return _image_part(source, wrapper if isinstance(wrapper, Image) else None)
    if kind == "pdf":
        return _pdf_part(source, wrapper if isinstance(wrapper, PDF) else None)
    if kind == "audio":
        return _audio_part(source, wrapper if isinstance(wrapper, Audio) else None)
    return _video_part(source, wrapper if isinstance(wrapper, Video) else None)


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and urlsplit(source.strip()).scheme.lower() in ("http", "https", "data")


def _read(source: Any) -> tuple[bytes, str | None]:
    """(bytes, filename) of a path or bytes source."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    if isinstance(source, str) and "://" in source and urlsplit(source).scheme.isalpha():
        raise AttachmentError(f"Only http(s) and data: URLs can be attached, got {source!r}")
    path = Path(source)
    if not path.is_file():
        raise _missing(path)
    return path.read_bytes(), path.name


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _mime_for(data: bytes, name: str | None, table: Mapping[str, str], kind: str) -> str:
    if name and _extension(name) in table:
        return table[_extension(name)]
    found = sniff(data)
    if found and found[0] == kind:
        return found[1]
    raise AttachmentError(f"cannot tell the {kind} type of {name or 'these bytes'}; pass mime='...'")


def _image_part(source: Any, wrapper: Image | None) -> dict[str, Any]:
    if _is_url(source):
        url = source.strip()
    else:
        data, name = _read(source)
        mime = (wrapper.mime if wrapper else None) or _mime_for(data, name, IMAGE_TYPES, "image")
        url = _data_url(mime, data)
    image_url: dict[str, Any] = {"url": url}
    if wrapper and wrapper.detail:
        image_url["detail"] = wrapper.detail
    return {"type": "image_url", "image_url": image_url}


def _pdf_part(source: Any, wrapper: PDF | None) -> dict[str, Any]:
    filename = wrapper.filename if wrapper else None
    if _is_url(source):
        url = source.strip()
        shown = filename or (PurePosixPath(unquote(urlsplit(url).path)).name if not url.startswith("data:") else "")
        return {"type": "file", "file": {"filename": shown or "document.pdf", "file_data": url}}
    data, name = _read(source)
    return {
        "type": "file",
        "file": {"filename": filename or name or "document.pdf", "file_data": _data_url("application/pdf", data)},
    }


def _audio_part(source: Any, wrapper: Audio | None) -> dict[str, Any]:
    fmt = wrapper.format if wrapper else None
    if isinstance(source, str) and source.strip().startswith("data:"):
        url = source.strip()
        mime = url[5 : url.index(";")].lower()
        fmt = fmt or MIME_AUDIO.get(mime) or mime.split("/")[-1]
        return {"type": "input_audio", "input_audio": {"data": url.split(",", 1)[1], "format": fmt}}
    if _is_url(source):
        from ._transport import download

        url = source.strip()
        limit, timeout = (wrapper.max_bytes, wrapper.timeout) if wrapper else (DOWNLOAD_LIMIT, DOWNLOAD_TIMEOUT)
        data = download(url, max_bytes=limit, timeout=timeout)
        name: str | None = PurePosixPath(unquote(urlsplit(url).path)).name
    else:
        data, name = _read(source)
    if fmt is None:
        fmt = AUDIO_TYPES.get(_extension(name or ""))
    if fmt is None:
        found = sniff(data)
        fmt = MIME_AUDIO.get(found[1]) if found and found[0] == "audio" else None
    if fmt is None:
        raise AttachmentError(f"cannot tell the audio format of {name or 'these bytes'}; pass Audio(..., format='wav')")
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode("ascii"), "format": fmt}}


def _video_part(source: Any, wrapper: Video | None) -> dict[str, Any]:
    if _is_url(source):
        return {"type": "video_url", "video_url": {"url": source.strip()}}
    data, name = _read(source)
    mime = (wrapper.mime if wrapper else None) or _mime_for(data, name, VIDEO_TYPES, "video")
    return {"type": "video_url", "video_url": {"url": _data_url(mime, data)}}


def is_message_list(message: Any) -> bool:
    """True for a list of ready-made message dicts (``[{'role': 'user', 'content': ...}, ...]``)."""
    return (
        isinstance(message, (list, tuple))
        and bool(message)
        and all((type(m) is dict or isinstance(m, Mapping)) and "role" in m for m in message)
    )
