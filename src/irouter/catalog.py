"""The model catalog: which models the endpoint offers (``GET /models``, no key needed)."""

from __future__ import annotations

from typing import Any

from ._transport import Endpoint
from .errors import APIResponseError


def list_models(base_url: str | None = None, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The raw model records from ``GET {base_url}/models`` (OpenRouter's by default)."""
    endpoint = Endpoint(base_url, api_key="")
    body = endpoint.get("models", timeout=timeout)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise APIResponseError("GET /models did not return a 'data' list", body=str(body)[:500])
    return [m for m in data if isinstance(m, dict) and m.get("id")]


def get_all_models(slug: bool = True, *, base_url: str | None = None, timeout: float = 30.0) -> list[str]:
    """Every model on offer: slugs to pass to `Chat`/`Call` (``slug=True``) or display names (``slug=False``).

    >>> get_all_models()[:2]                         # doctest: +SKIP
    ['openai/gpt-4o-mini', 'anthropic/claude-sonnet-4.5']
    """
    return [m["id"] if slug else str(m.get("name") or m["id"]) for m in list_models(base_url, timeout)]
