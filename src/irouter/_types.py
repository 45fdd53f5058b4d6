"""The types in the public signatures.

`Chat`, `Call` and their async siblings are generic in what a plain text turn returns: ``Chat("a")`` is a
``Chat[str]``, ``Chat(["a", "b"])`` a ``Chat[dict[str, str]]``. Their overloads key every return type on that:
``response_format=City`` gives ``City`` (``dict[str, City]``), ``stream=True`` a ``Stream[str]``
(``Stream[tuple[str, str]]``), ``raw=True`` a `Response` (``dict[str, Response]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from ._content import Attachment
from .tools import Tool

Message: TypeAlias = str | bytes | os.PathLike[str] | Attachment | Sequence[Any]
"""A message: text; a path, bytes or an `Image`/`PDF`/`Audio`/`Video`; or a list of those and content-part dicts (or,
for `Call`, a list of message dicts)."""
Tools: TypeAlias = Sequence[Callable[..., Any] | Tool | Mapping[str, Any]]
"""Functions (or `Tool` objects) irouter runs, and tool schema dicts passed through as they are."""
Headers: TypeAlias = Mapping[str, str]
Body: TypeAlias = Mapping[str, Any]
Models: TypeAlias = list[str] | tuple[str, ...]
"""Several model slugs: answers come back as ``{slug: answer}``."""

T = TypeVar("T")
"""What ``response_format=`` asks for: a pydantic model, dataclass or TypedDict."""
Answer = TypeVar("Answer", str, dict[str, str])
"""What a plain text turn returns: ``str`` for one model, ``{slug: text}`` for several. `Chat`, `AsyncChat`,
`Call` and `AsyncCall` are generic in it; the constructor's ``model`` argument decides it."""
