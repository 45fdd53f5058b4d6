"""The providers of one model: OpenRouter's per-model endpoints list, as typed records.

>>> from irouter import Chat, providers                          # doctest: +SKIP
>>> found = providers("moonshotai/kimi-k3")                      # doctest: +SKIP
>>> print(found)                                                 # a table: price, context, speed, uptime
>>> chat = Chat([p.slug for p in found[:3]])                     # the same model from three providers

``GET /models/{author}/{slug}/endpoints`` needs no key (with one, OpenRouter fills in the latency and throughput
percentiles). Lists are cached in memory and on disk like the catalog (`irouter.catalog`), for a day.
A provider is chosen in a slug with ``@``: ``"moonshotai/kimi-k3@fireworks"``, or ``@tag:quantization``
(see `irouter._routing`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import _retry as retry
from ._routing import plain
from ._transport import Endpoint, resolve_base_url
from .catalog import CATALOG_TTL, _lock, _memory, _price, _read_disk, _write_disk
from .errors import APIResponseError, NotFoundError

__all__ = ["Percentiles", "Provider", "Providers", "providers"]


@dataclass(frozen=True)
class Percentiles:
    """p50/p75/p90/p99 of the last 30 minutes: latency (time to first token) in **milliseconds**, throughput in
    tokens per second."""

    p50: float | None
    p75: float | None
    p90: float | None
    p99: float | None

    @classmethod
    def of(cls, value: Any) -> Percentiles | None:
        if not isinstance(value, Mapping):
            return None
        return cls(*(_number(value.get(k)) for k in ("p50", "p75", "p90", "p99")))


@dataclass(frozen=True)
class Provider:
    """One provider's endpoint for a model. Prices are US dollars per token (``None`` when not listed);
    ``uptime_*`` are percents (``None`` with too little data); ``status`` 0 is healthy, below 0 degraded."""

    model: str
    """The model's slug (``moonshotai/kimi-k3``)."""
    provider: str
    """The provider's display name, as answers report it (``Fireworks``)."""
    tag: str
    """The endpoint's slug for routing (``fireworks``, ``fireworks/fast``, ``deepinfra/fp8``)."""
    name: str
    quantization: str | None
    context_length: int | None
    max_completion_tokens: int | None
    max_prompt_tokens: int | None
    prompt_price: float | None
    completion_price: float | None
    cache_read_price: float | None
    supported_parameters: tuple[str, ...]
    status: int | None
    uptime_last_5m: float | None
    uptime_last_30m: float | None
    uptime_last_1d: float | None
    latency: Percentiles | None
    """Time to first token over the last 30 minutes, in milliseconds (``None`` without a key)."""
    throughput: Percentiles | None
    """Tokens per second over the last 30 minutes (``None`` without a key)."""
    supports_implicit_caching: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_record(cls, record: Mapping[str, Any], model: str) -> Provider:
        pricing = record.get("pricing") or {}
        tag = str(record.get("tag") or record.get("provider_name") or "")
        return cls(
            model=str(record.get("model_id") or model),
            provider=str(record.get("provider_name") or tag),
            tag=tag,
            name=str(record.get("name") or ""),
            quantization=record.get("quantization") if isinstance(record.get("quantization"), str) else None,
            context_length=_whole(record.get("context_length")),
            max_completion_tokens=_whole(record.get("max_completion_tokens")),
            max_prompt_tokens=_whole(record.get("max_prompt_tokens")),
            prompt_price=_price(pricing.get("prompt")),
            completion_price=_price(pricing.get("completion")),
            cache_read_price=_price(pricing.get("input_cache_read")),
            supported_parameters=tuple(str(p) for p in record.get("supported_parameters") or ()),
            status=_whole(record.get("status")),
            uptime_last_5m=_number(record.get("uptime_last_5m")),
            uptime_last_30m=_number(record.get("uptime_last_30m")),
            uptime_last_1d=_number(record.get("uptime_last_1d")),
            latency=Percentiles.of(record.get("latency_last_30m")),
            throughput=Percentiles.of(record.get("throughput_last_30m")),
            supports_implicit_caching=record.get("supports_implicit_caching") is True,
            raw=dict(record),
        )

    @property
    def slug(self) -> str:
        """The slug that sends a chat's requests to this endpoint only: ``"moonshotai/kimi-k3@fireworks/fast"``."""
        return f"{self.model}@{self.tag}"

    @property
    def prompt_price_per_million(self) -> float | None:
        return None if self.prompt_price is None else round(self.prompt_price * 1e6, 9)

    @property
    def completion_price_per_million(self) -> float | None:
        return None if self.completion_price is None else round(self.completion_price * 1e6, 9)

    @property
    def healthy(self) -> bool:
        """``status`` is 0 (OpenRouter marks endpoints with degraded uptime below 0)."""
        return self.status in (0, None)

    def supports(self, parameter: str) -> bool:
        """Whether this endpoint takes ``parameter`` (``"tools"``, ``"response_format"``, ``"seed"``...)."""
        return parameter in self.supported_parameters

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-ready dict (percentiles as ``latency_p50_ms``..., ``throughput_p50``...; no ``raw``)."""
        row: dict[str, Any] = {
            "slug": self.slug,
            **{k: getattr(self, k) for k in _FLAT},
            "prompt_per_million": self.prompt_price_per_million,
            "completion_per_million": self.completion_price_per_million,
            "supported_parameters": list(self.supported_parameters),
        }
        for name, unit in (("latency", "_ms"), ("throughput", "")):
            values = getattr(self, name)
            for p in ("p50", "p75", "p90", "p99"):
                row[f"{name}_{p}{unit}"] = getattr(values, p) if values is not None else None
        return row


_FLAT = (
    *("model", "provider", "tag", "quantization", "context_length", "max_completion_tokens", "max_prompt_tokens"),
    *("prompt_price", "completion_price", "cache_read_price", "status", "uptime_last_5m", "uptime_last_30m"),
    *("uptime_last_1d", "supports_implicit_caching"),
)


class Providers(list[Provider]):
    """The providers of a model (a list of `Provider`), printable as a table; `to_pandas` makes a DataFrame."""

    def __init__(self, items: list[Provider], model: str) -> None:
        super().__init__(items)
        self.model = model

    def to_pandas(self) -> Any:
        """One row per provider (`Provider.to_dict`); pandas is imported here only."""
        from .grid import _pandas

        return _pandas().DataFrame([p.to_dict() for p in self])

    def table(self) -> str:
        """The list as aligned text: slug, price per million tokens, context, quantization, speed, uptime."""
        rows = [("provider", "$/M in", "$/M out", "context", "max out", "quant", "p50 ms", "p50 tok/s", "uptime 1d")]
        for p in self:
            rows.append(
                (
                    p.slug + ("" if p.healthy else " (degraded)"),
                    _num(p.prompt_price_per_million),
                    _num(p.completion_price_per_million),
                    f"{p.context_length:,}" if p.context_length else "?",
                    f"{p.max_completion_tokens:,}" if p.max_completion_tokens else "-",
                    p.quantization or "?",
                    _num(p.latency.p50 if p.latency else None, "{:,.0f}"),
                    _num(p.throughput.p50 if p.throughput else None, "{:,.0f}"),
                    _num(p.uptime_last_1d, "{:.1f}%"),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in rows
        )

    def __str__(self) -> str:
        return f"{len(self)} provider{'s' if len(self) != 1 else ''} of {self.model}\n{self.table()}"

    def __repr__(self) -> str:
        return f"Providers({self.model!r}, {[p.tag for p in self]})"

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def providers(
    model: str,
    *,
    base_url: str | None = None,
    refresh: bool = False,
    max_age: float = CATALOG_TTL,
    timeout: float = 30.0,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    api_key: str | None = None,
    http_client: Any = None,
) -> Providers:
    """The providers serving ``model`` (``"moonshotai/kimi-k3"``), from OpenRouter's endpoints list.

    A provider suffix filters: ``providers("x/y@deepinfra")`` keeps that provider's endpoints (its tags, say
    ``deepinfra`` and ``deepinfra/fp8``). The list comes from the cache when younger than ``max_age`` seconds
    unless ``refresh``. The key (``api_key``, else ``OPENROUTER_API_KEY`` when set) is sent if there is one, so
    the latency and throughput percentiles are filled in; none is needed. Raises `NotFoundError` for a model
    OpenRouter does not know.
    """
    if not isinstance(model, str) or "/" not in plain(model) or any(c.isspace() for c in model):
        raise ValueError(f"model must be a slug such as 'moonshotai/kimi-k3', got {model!r}")
    from ._routing import parse_slug

    slug = parse_slug(model)
    if base_url is None and _elsewhere(slug.model):
        raise ValueError(
            f"{slug.model!r} is not served through OpenRouter (local/ or a registered endpoint), so it has no "
            "OpenRouter providers to list; irouter.providers(...) takes an OpenRouter slug such as 'moonshotai/kimi-k3'"
        )
    url = resolve_base_url(base_url)
    try:
        body = _endpoints_body(url, slug.model, refresh, max_age, timeout, max_retries, api_key, http_client)
    except NotFoundError as error:
        error.model = error.model or slug.model
        error.message = (
            f"{error.message}: {url} lists no providers for {slug.model!r}; check the slug "
            "(irouter.get_all_models() or `irouter models` lists them)"
        )
        raise
    found = [Provider.from_record(r, slug.model) for r in body["endpoints"] if isinstance(r, Mapping)]
    if slug.provider is not None:
        wanted = slug.provider.lower()
        found = [p for p in found if wanted in (p.tag.lower(), p.tag.split("/")[0].lower(), p.provider.lower())]
    if slug.quantization is not None:
        found = [p for p in found if p.quantization == slug.quantization]
    return Providers(found, slug.model)


def _elsewhere(model: str) -> bool:
    """Whether ``model`` goes to another endpoint than OpenRouter (``local/`` or a registered prefix)."""
    from .endpoints import registered_endpoints

    return model.startswith("local/") or any(model.startswith(prefix) for prefix in registered_endpoints())


def _endpoints_body(
    url: str,
    model: str,
    refresh: bool,
    max_age: float,
    timeout: float,
    max_retries: int,
    api_key: str | None,
    http_client: Any,
) -> dict[str, Any]:
    """The ``data`` object of the endpoints list, cached under its own URL beside the catalog."""
    path = f"models/{model}/endpoints"
    key = f"{url}/{path}"
    if not refresh:
        now = time.time()
        with _lock:
            hit = _memory.get(key)
        if hit is None or now - hit[0] > max_age:
            hit = _read_disk(key, now, max_age)
        if hit is not None and hit[1] and isinstance(hit[1][0], dict):
            return hit[1][0]
    endpoint = Endpoint(url, api_key, require_key=False, client=http_client)
    answer = retry.call(lambda: endpoint.get(path, timeout=timeout), retry.RetryPolicy(max_retries))
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("endpoints"), list):
        raise APIResponseError(f"GET /{path} did not return a 'data' object with 'endpoints'", body=str(answer)[:500])
    fetched = time.time()
    with _lock:
        _memory[key] = (fetched, [data])
    _write_disk(key, fetched, [data])
    return data


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _num(value: float | None, form: str = "{:g}") -> str:
    return "?" if value is None else form.format(value)
