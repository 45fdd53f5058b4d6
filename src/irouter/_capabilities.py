"""Capability checks before sending: does the catalog say each model can take this request?"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .catalog import ROUTERS, ModelInfo, closest, find
from .errors import CapabilityError, UnknownModelError

_PART_NEEDS = {
    "image_url": ("image", "image input"),
    "input_audio": ("audio", "audio input"),
    "video_url": ("video", "video input"),
}
"""Content-part types and the input modality a model needs for them. PDFs (``file``) are left out: OpenRouter
parses them for any model."""


def needs(content: Any, tools: bool, structured: bool) -> list[tuple[str, str]]:
    """(requirement, label) pairs a request has: ``("tools", ...)``, ``("structured", ...)`` or an input
    modality such as ``("image", "image input")``."""
    found: list[tuple[str, str]] = []
    if tools:
        found.append(("tools", "tools"))
    if structured:
        found.append(("structured", "structured output"))
    for part in content if isinstance(content, list) else []:
        need = _PART_NEEDS.get(str(part.get("type"))) if isinstance(part, dict) else None
        if need and need not in found:
            found.append(need)
    return found


def _has(info: ModelInfo, requirement: str) -> bool:
    if requirement == "tools":
        return info.supports_tools
    if requirement == "structured":
        return info.supports_structured_output
    return requirement in info.input_modalities


def check_spaces(models: Sequence[str], base_url: str) -> None:
    """Refuse a slug with whitespace inside (``"OpenAI: GPT-4o mini"`` is a display name, not a slug), suggesting
    the closest slugs of the catalog at hand (OpenRouter's is fetched for the hint, outside an event loop)."""
    for slug in models:
        if not any(c.isspace() for c in slug):
            continue
        suggestions = closest(_records_for_hint(base_url) or [], slug)
        hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        raise UnknownModelError(
            f"{slug!r} is not a model slug: slugs have no spaces, like 'openai/gpt-4o-mini'.{hint} "
            "irouter.get_all_models() lists every slug.",
            model=slug,
            suggestions=suggestions,
        )


def _records_for_hint(base_url: str) -> list[dict[str, Any]] | None:
    from ._transport import is_openrouter
    from .catalog import cached_records, list_models
    from .errors import APIError

    records = cached_records(base_url)
    if records is not None or not is_openrouter(base_url):
        return records
    import asyncio

    try:
        asyncio.get_running_loop()
        return None  # never block an event loop for a hint
    except RuntimeError:
        pass
    try:
        return list_models(base_url)
    except APIError:
        return None


def check(records: Iterable[dict[str, Any]], models: Sequence[str], requirements: list[tuple[str, str]]) -> None:
    """Raise `UnknownModelError` for a slug the catalog lacks, `CapabilityError` for a model that cannot take
    what the request carries. Router slugs (``openrouter/auto``, ``~...-latest``) are not checked."""
    records = list(records)
    for model in models:
        if model.startswith(ROUTERS):
            continue
        info = find(records, model)
        if info is None:
            suggestions = closest(records, model)
            hint = f" Did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
            raise UnknownModelError(
                f"{model!r} is not in the model catalog of this endpoint.{hint} irouter.get_all_models() lists "
                "every slug; pass check_capabilities=False to send anyway.",
                model=model,
                suggestions=suggestions,
            )
        for requirement, label in requirements:
            if not _has(info, requirement):
                what = (
                    f"its inputs are {', '.join(info.input_modalities)}"
                    if requirement not in ("tools", "structured")
                    else "the catalog does not list it"
                )
                raise CapabilityError(
                    f"{model} does not take {label} ({what}). Pick a model that does (irouter.models(...) filters "
                    "the catalog), or pass check_capabilities=False to send anyway.",
                    model=model,
                    capability=label,
                )
