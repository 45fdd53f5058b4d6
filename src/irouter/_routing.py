"""Provider slugs: ``"author/model@provider"`` or ``"author/model@provider:quantization"``, as pure functions.

A slug with a provider suffix names one of OpenRouter's providers of a model (and optionally the quantization it
must serve). It is sent as the plain slug with OpenRouter's ``provider`` routing pinned to that provider, no
fallbacks, and the quantization; everywhere else (history, usage, the ledger) the full slug is the model's name, so
``Chat(["x/y@deepinfra", "x/y@together"])`` holds two conversations with one model from two providers.

A ``provider=`` option given as well is merged into that routing when it agrees with it (``sort``,
``data_collection``, ``zdr``, ``max_price``... are kept; an ``order``/``only`` list that holds the provider, or a
``quantizations`` list that holds the quantization, narrows to it) and refused before any request when it does not
(``allow_fallbacks=True``, ``ignore`` naming the provider, ``order``/``only``/``quantizations`` without it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

QUANTIZATIONS = ("int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16", "fp32", "unknown")
"""The quantizations OpenRouter knows (openrouter-protocol.md §6.1)."""

_PROVIDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
"""A provider slug (``deepinfra``, ``together``) or an endpoint tag (``fireworks/fast``, ``deepinfra/fp8``)."""


@dataclass(frozen=True)
class ProviderSlug:
    """A slug split at its ``@``: the plain ``model`` OpenRouter knows, the ``provider`` (``None`` without a
    suffix) and the ``quantization`` (``None`` when not named)."""

    slug: str
    model: str
    provider: str | None = None
    quantization: str | None = None

    def routing(self) -> dict[str, Any]:
        """OpenRouter's ``provider`` object for this slug: that provider only, no fallbacks, the quantization."""
        if self.provider is None:
            return {}
        pinned: dict[str, Any] = {"order": [self.provider], "only": [self.provider], "allow_fallbacks": False}
        if self.quantization is not None:
            pinned["quantizations"] = [self.quantization]
        return pinned

    def merge(self, given: Any) -> Any:
        """``given`` (a user's ``provider=`` value, or ``None``) with this slug's routing; raises `ValueError` where
        they disagree. Without a provider suffix ``given`` is returned unchanged."""
        if self.provider is None:
            return given
        if given is None:
            return self.routing()
        if not isinstance(given, Mapping):
            raise TypeError(f"provider= must be a dict of OpenRouter's routing preferences, got {given!r}")
        merged = dict(given)
        for key in ("order", "only"):
            if merged.get(key) is not None and not any(self._names(name) for name in _names_in(merged[key], key)):
                raise self._conflict(f"provider={{'{key}': {merged[key]!r}}} does not include {self.provider!r}")
        if merged.get("allow_fallbacks") is True:
            raise self._conflict("provider={'allow_fallbacks': True} would let other providers answer")
        if merged.get("ignore") is not None and any(self._names(n) for n in _names_in(merged["ignore"], "ignore")):
            raise self._conflict(f"provider={{'ignore': {merged['ignore']!r}}} excludes {self.provider!r}")
        wanted = merged.get("quantizations")
        quantizations = [str(q).lower() for q in _names_in(wanted, "quantizations")] if wanted is not None else None
        if self.quantization is not None and quantizations is not None and self.quantization not in quantizations:
            raise self._conflict(f"provider={{'quantizations': {wanted!r}}} does not include {self.quantization!r}")
        merged.update(self.routing())
        return merged

    def apply(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Request options with the ``provider`` routing of this slug merged in (also into an ``extra_body``
        that sets ``provider``, which would otherwise replace it)."""
        out = dict(options)
        if self.provider is None:
            return out
        out["provider"] = self.merge(options.get("provider"))
        extra = options.get("extra_body")
        if isinstance(extra, Mapping) and "provider" in extra:
            out["extra_body"] = {**extra, "provider": self.merge(extra["provider"])}
        return out

    def _names(self, name: Any) -> bool:
        """Whether a provider name of a ``provider=`` list means this slug's provider (case aside; a base slug
        such as ``fireworks`` covers the endpoint tag ``fireworks/fast``)."""
        mine, theirs = str(self.provider).lower(), str(name).lower()
        return theirs == mine or mine.startswith(theirs + "/")

    def _conflict(self, why: str) -> ValueError:
        return ValueError(
            f"{self.slug!r} pins provider {self.provider!r}, but {why}. Drop that key from provider=, or use the "
            f"plain slug {self.model!r} to route with provider= alone."
        )


def _names_in(value: Any, key: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"provider={{'{key}': ...}} must be a list of names, got {value!r}")


def parse_slug(slug: str) -> ProviderSlug:
    """Split ``slug`` at ``@``; raises `ValueError` with what to write for a malformed suffix."""
    if "@" not in slug:
        return ProviderSlug(slug, slug)
    model, _, suffix = slug.partition("@")
    example = "like 'deepseek/deepseek-r1@deepinfra' or 'meta-llama/llama-3.3-70b-instruct@together:fp8'"
    if not model or "@" in suffix:
        raise ValueError(f"{slug!r} is not a model slug: write one '@' between the model and its provider, {example}")
    provider, colon, quantization = suffix.partition(":")
    if not _PROVIDER.fullmatch(provider):
        raise ValueError(
            f"{slug!r}: {provider!r} is not a provider name: after '@' comes a provider slug such as 'deepinfra' "
            f"or an endpoint tag such as 'fireworks/fast' (irouter.providers({model!r}) lists them), {example}"
        )
    if colon and quantization not in QUANTIZATIONS:
        raise ValueError(
            f"{slug!r}: {quantization!r} is not a quantization; after ':' comes one of {', '.join(QUANTIZATIONS)}"
        )
    return ProviderSlug(slug, model, provider, quantization if colon else None)


def plain(slug: str) -> str:
    """The model part of a slug (``"x/y@deepinfra"`` -> ``"x/y"``); a slug without a suffix as it is."""
    return slug.partition("@")[0] if "@" in slug else slug
