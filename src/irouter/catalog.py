"""The model catalog: which models an endpoint offers (``GET /models``, no key needed), with prices and abilities.

The catalog is cached in memory and on disk (one file per base URL in the user cache directory, or
``$IROUTER_CACHE_DIR``) for ``CATALOG_TTL`` seconds, so it costs one request a day, not one per call.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _retry as retry
from ._retry import DEFAULT_MAX_RETRIES
from ._routing import plain
from ._transport import Endpoint, resolve_base_url
from .errors import APIResponseError

CATALOG_TTL = 24 * 3600.0
"""Seconds a fetched catalog stays fresh (memory and disk)."""
RECHECK_AFTER = 600.0
"""A slug missing from a cached catalog older than this many seconds is looked up in a fresh copy before it is
refused (the model may be new)."""

_memory: dict[str, tuple[float, list[dict[str, Any]]]] = {}
_lock = threading.Lock()


def _price(value: Any) -> float | None:
    try:
        return float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class ModelInfo:
    """One model of the catalog. Prices are US dollars per token (``*_per_million`` for per million tokens);
    ``None`` when the endpoint does not say."""

    id: str
    name: str
    context_length: int | None
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    prompt_price: float | None
    completion_price: float | None
    supported_parameters: tuple[str, ...]
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ModelInfo:
        architecture = record.get("architecture") or {}
        pricing = record.get("pricing") or {}
        inputs = architecture.get("input_modalities") or _modalities(architecture.get("modality"), 0)
        outputs = architecture.get("output_modalities") or _modalities(architecture.get("modality"), 1)
        context = record.get("context_length") or (record.get("top_provider") or {}).get("context_length")
        return cls(
            id=str(record["id"]),
            name=str(record.get("name") or record["id"]),
            context_length=int(context) if isinstance(context, (int, float)) else None,
            input_modalities=tuple(inputs),
            output_modalities=tuple(outputs),
            prompt_price=_price(pricing.get("prompt")),
            completion_price=_price(pricing.get("completion")),
            supported_parameters=tuple(record.get("supported_parameters") or ()),
            description=str(record.get("description") or ""),
            raw=record,
        )

    @property
    def prompt_price_per_million(self) -> float | None:
        return None if self.prompt_price is None else round(self.prompt_price * 1e6, 9)

    @property
    def completion_price_per_million(self) -> float | None:
        return None if self.completion_price is None else round(self.completion_price * 1e6, 9)

    @property
    def max_completion_tokens(self) -> int | None:
        """The most tokens one answer may have (``top_provider.max_completion_tokens``), if the catalog says."""
        value = (self.raw.get("top_provider") or {}).get("max_completion_tokens")
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None

    @property
    def cache_prices(self) -> tuple[float | None, float | None, float | None]:
        """Dollars per token read from the prompt cache, written to it (5 minutes) and written for an hour
        (``pricing.input_cache_read``, ``input_cache_write``, ``input_cache_write_1h``); ``None`` where not listed."""
        pricing = self.raw.get("pricing") or {}
        keys = ("input_cache_read", "input_cache_write", "input_cache_write_1h")
        read, write, hour = (_price(pricing.get(key)) for key in keys)
        return read, write, hour

    @property
    def is_free(self) -> bool:
        return self.id.endswith(":free") or (self.prompt_price == 0 and self.completion_price == 0)

    @property
    def supports_tools(self) -> bool:
        return "tools" in self.supported_parameters

    @property
    def supports_structured_output(self) -> bool:
        return "structured_outputs" in self.supported_parameters or "response_format" in self.supported_parameters

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """What so many tokens cost at the listed prices (an estimate: caching, reasoning and tiers aside)."""
        if self.prompt_price is None or self.completion_price is None:
            return None
        return prompt_tokens * self.prompt_price + completion_tokens * self.completion_price


def _modalities(modality: Any, side: int) -> list[str]:
    if not isinstance(modality, str) or "->" not in modality:
        return ["text"]
    return modality.split("->")[side].split("+")


# --------------------------------------------------------------------------------------------- fetching


def cache_dir() -> Path:
    """Where catalogs are kept: ``$IROUTER_CACHE_DIR``, else the platform's user cache directory."""
    if os.environ.get("IROUTER_CACHE_DIR"):
        return Path(os.environ["IROUTER_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "irouter"


def _cache_file(base_url: str) -> Path:
    import hashlib

    return cache_dir() / f"models-{hashlib.sha256(base_url.encode()).hexdigest()[:16]}.json"


def _read_disk(base_url: str, now: float, max_age: float) -> tuple[float, list[dict[str, Any]]] | None:
    try:
        stored = json.loads(_cache_file(base_url).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("base_url") != base_url:
        return None
    fetched = stored.get("fetched_at")
    if not isinstance(fetched, (int, float)) or now - fetched > max_age or not isinstance(stored.get("data"), list):
        return None
    hit = (float(fetched), stored["data"])
    with _lock:
        _memory[base_url] = hit
    return hit


def _write_disk(base_url: str, fetched: float, data: list[dict[str, Any]]) -> None:
    target = _cache_file(base_url)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps({"base_url": base_url, "fetched_at": fetched, "data": data}))
        temp.replace(target)  # atomic: a reader never sees half a file
    except OSError:
        pass  # a read-only home is no reason to fail; the memory cache still works


def clear_cache(disk: bool = False) -> None:
    """Forget the catalogs held in memory (and, with ``disk=True``, the files in `cache_dir`)."""
    with _lock:
        _memory.clear()
    if disk:
        for path in cache_dir().glob("models-*.json"):
            path.unlink(missing_ok=True)


def cached_records(base_url: str | None = None, max_age: float = CATALOG_TTL) -> list[dict[str, Any]] | None:
    """The catalog if it is already at hand (memory or a disk cache younger than ``max_age`` seconds), without
    any request; ``None`` otherwise."""
    found = cached_catalog(base_url, max_age)
    return found[1] if found is not None else None


def cached_catalog(
    base_url: str | None = None, max_age: float = CATALOG_TTL
) -> tuple[float, list[dict[str, Any]]] | None:
    """(seconds since it was fetched, records) of the catalog at hand, like `cached_records`."""
    url = resolve_base_url(base_url)
    now = time.time()
    with _lock:
        hit = _memory.get(url)
    if hit is None or now - hit[0] > max_age:
        hit = _read_disk(url, now, max_age)
    return (now - hit[0], hit[1]) if hit is not None else None


def list_models(
    base_url: str | None = None,
    timeout: float = 30.0,
    refresh: bool = False,
    max_age: float = CATALOG_TTL,
    *,
    max_retries: int = DEFAULT_MAX_RETRIES,
    api_key: str | None = None,
    http_client: Any = None,
) -> list[dict[str, Any]]:
    """The raw model records of ``GET {base_url}/models`` (OpenRouter's by default), from the cache when it is
    younger than ``max_age`` seconds (a day by default) unless ``refresh``. A failed fetch is retried like any
    request (at most ``max_retries + 1`` attempts). ``api_key`` is for servers that want one for their list
    (OpenRouter does not); the list is fetched through ``http_client`` (an ``httpx2.Client``) when given."""
    url = resolve_base_url(base_url)
    if not refresh:
        cached = cached_records(url, max_age)
        if cached is not None:
            return cached
    endpoint = Endpoint(url, api_key, api_key_env=None, require_key=False, client=http_client)
    body = retry.call(lambda: endpoint.get("models", timeout=timeout), retry.RetryPolicy(max_retries))
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise APIResponseError("GET /models did not return a 'data' list", body=str(body)[:500])
    records = [m for m in data if isinstance(m, dict) and m.get("id")]
    fetched = time.time()
    with _lock:
        _memory[url] = (fetched, records)
    _write_disk(url, fetched, records)
    return records


def get_all_models(
    slug: bool = True, *, base_url: str | None = None, timeout: float = 30.0, refresh: bool = False
) -> list[str]:
    """Every model on offer: slugs to pass to `Chat`/`Call` (``slug=True``) or display names (``slug=False``).

    >>> get_all_models()[:2]                         # doctest: +SKIP
    ['openai/gpt-4o-mini', 'anthropic/claude-sonnet-4.5']
    """
    return [m["id"] if slug else str(m.get("name") or m["id"]) for m in list_models(base_url, timeout, refresh)]


def models(
    search: str | None = None,
    *,
    free: bool | None = None,
    modality: str | None = None,
    output_modality: str | None = None,
    tools: bool | None = None,
    structured_output: bool | None = None,
    max_price: float | None = None,
    base_url: str | None = None,
    refresh: bool = False,
    api_key: str | None = None,
) -> list[ModelInfo]:
    """The catalog as `ModelInfo` records, filtered.

    Args:
        search: words that must all appear in the id, name or description (case-insensitive).
        free: only free models (``True``) or only paid ones (``False``).
        modality: an input the model must take: ``"image"``, ``"file"``, ``"audio"``, ``"video"``.
        output_modality: an output it must give, e.g. ``"image"``.
        tools: only models that take tools (``True``).
        structured_output: only models that take a JSON schema response format (``True``).
        max_price: dollars per million tokens that neither the prompt nor the completion price may exceed.
        refresh: fetch anew even if the cached catalog is fresh.
        api_key: for a server that wants a key for its list (OpenRouter does not).
    """
    found = [ModelInfo.from_record(r) for r in list_models(base_url, refresh=refresh, api_key=api_key)]
    words = (search or "").lower().split()
    return [
        m
        for m in found
        if all(w in f"{m.id} {m.name} {m.description}".lower() for w in words)
        and (free is None or m.is_free == free)
        and (modality is None or modality in m.input_modalities)
        and (output_modality is None or output_modality in m.output_modalities)
        and (tools is None or m.supports_tools == tools)
        and (structured_output is None or m.supports_structured_output == structured_output)
        and (max_price is None or _within(m, max_price))
    ]


def _within(model: ModelInfo, max_price: float) -> bool:
    prices = (model.prompt_price_per_million, model.completion_price_per_million)
    return all(p is not None and p <= max_price for p in prices)


# --------------------------------------------------------------------------------------------- lookups


ROUTERS = ("openrouter/", "~")
VARIANTS = (":online", ":nitro", ":floor", ":thinking", ":extended", ":exacto")


def find(records: Iterable[dict[str, Any]], slug: str) -> ModelInfo | None:
    """The record for ``slug``, allowing for variant suffixes (``:online``, ``:nitro``...) and a provider suffix
    (``@deepinfra``: the model's own record); ``None`` if absent."""
    by_id = {r["id"]: r for r in records}
    candidate = plain(slug)
    while candidate not in by_id:
        for suffix in VARIANTS:
            if candidate.endswith(suffix):
                candidate = candidate[: -len(suffix)]
                break
        else:
            return None
    return ModelInfo.from_record(by_id[candidate])


def closest(records: Iterable[dict[str, Any]], slug: str, n: int = 3) -> list[str]:
    """The catalog slugs that look most like ``slug`` (for "did you mean")."""
    import difflib

    records = list(records)
    ids = [r["id"] for r in records]
    tail = {i.split("/", 1)[-1]: i for i in ids}
    names = {str(r.get("name")).lower(): r["id"] for r in records if r.get("name")}  # "OpenAI: GPT-4o-mini"
    matches = [names[n] for n in difflib.get_close_matches(slug.lower(), list(names), n=n, cutoff=0.8)]
    for found in difflib.get_close_matches(slug, ids, n=n, cutoff=0.5):
        if found not in matches:
            matches.append(found)
    for name in difflib.get_close_matches(slug.split("/", 1)[-1], list(tail), n=n, cutoff=0.6):
        if tail[name] not in matches:
            matches.append(tail[name])
    return matches[:n]
