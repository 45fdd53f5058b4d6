"""Embeddings: `embed` and `aembed` turn texts into vectors through OpenRouter's ``/embeddings`` (or any
OpenAI-compatible server's, by slug prefix or ``base_url``; ``local/`` models through llama.cpp's embedding mode).

The texts go in batches of at most ``batch_size``, ``concurrency`` batches at a time; each batch is retried by the
one retry policy (`_retry`), and its usage and cost land in the result's ledger, one `LedgerEntry` per batch. The
vectors come back in the order of the texts as lists of floats, or as a numpy array with `Embeddings.to_numpy`
(numpy is imported only then).
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _retry as retry
from ._ledger import LedgerEntry, entry_for
from ._wire import Reply, error_from_body
from .errors import APIResponseError

__all__ = ["Embeddings", "aembed", "embed"]

EMBEDDINGS_PATH = "embeddings"
DEFAULT_MODEL = "openai/text-embedding-3-small"
DEFAULT_BATCH_SIZE = 128
DEFAULT_CONCURRENCY = 4


class Embeddings(list[list[float]]):
    """The vectors of `embed`, one per text, in the texts' order (a list of lists of floats).

    ``ledger`` has one `LedgerEntry` per batch request (``step`` is the batch's number, from 1); ``usage`` and
    ``cost`` add them up.
    """

    model: str
    ledger: list[LedgerEntry]

    def __init__(self, vectors: Iterable[list[float]] = (), model: str = "", ledger: Sequence[LedgerEntry] = ()):
        super().__init__(vectors)
        self.model = model
        self.ledger = list(ledger)

    @property
    def usage(self) -> dict[str, int]:
        """Tokens used by every batch: ``{"prompt_tokens": ..., "total_tokens": ...}``."""
        return {
            "prompt_tokens": sum(e.prompt_tokens for e in self.ledger),
            "total_tokens": sum(e.total_tokens for e in self.ledger),
        }

    @property
    def cost(self) -> float | None:
        """Dollars the server reported for every batch (``None`` when none reported a cost: local servers)."""
        costs = [e.cost for e in self.ledger if e.cost is not None]
        return sum(costs) if costs else None

    def to_numpy(self, dtype: Any = "float32") -> Any:
        """The vectors as one ``(texts, dimensions)`` numpy array (imports numpy, which must be installed)."""
        try:
            import numpy
        except ImportError:
            raise ImportError("Embeddings.to_numpy() needs numpy: pip install numpy") from None
        return numpy.asarray(self, dtype=dtype).reshape(len(self), -1 if self else 0)  # 2-D, even for no texts

    def __repr__(self) -> str:
        width = len(self[0]) if self else 0
        return f"Embeddings({len(self)} vectors of {width} floats, model={self.model!r})"


@dataclass
class _Job:
    """Everything checked before the first request: where to send, what, and how."""

    model: str
    wire_model: str
    """The name the server knows (``smollm2`` for ``local/smollm2``)."""
    endpoint: Any
    batches: list[list[str]]
    fields: dict[str, Any]
    extra_headers: Mapping[str, str] | None
    timeout: float | None
    policy: retry.RetryPolicy
    concurrency: int
    ledger: list[LedgerEntry | None] = field(default_factory=list)

    def body(self, batch: list[str]) -> dict[str, Any]:
        """One batch's request body; ``extra_body`` is merged in last."""
        body: dict[str, Any] = {"input": batch, "model": self.wire_model}
        body.update({k: v for k, v in self.fields.items() if k != "extra_body"})
        body.update(self.fields.get("extra_body") or {})
        return body


def _texts(texts: Any) -> list[str]:
    items = [texts] if isinstance(texts, str) else texts
    if isinstance(items, (bytes, Mapping)) or not isinstance(items, Iterable):
        raise TypeError(f"embed() takes a string or a list of strings, got {type(texts).__name__}")
    items = list(items)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise TypeError(f"embed() takes strings; item {i} is {type(text).__name__}")
        if not text:
            raise ValueError(f"embed(): item {i} is an empty string, which no embedding model takes; drop it")
    return items


def _whole(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value


def _job(texts: Any, model: str, base_url: str | None, api_key: str | None, kw: dict[str, Any]) -> _Job:
    """Check everything and find the endpoint, before any request."""
    from ._transport import Endpoint
    from .endpoints import route

    items = _texts(texts)
    if not isinstance(model, str) or not model.strip() or model != model.strip():
        raise ValueError(f"model must be an embedding model's slug such as {DEFAULT_MODEL!r}, got {model!r}")
    size = _whole("batch_size", kw["batch_size"])
    concurrency = _whole("concurrency", kw["concurrency"])
    if kw["dimensions"] is not None:
        _whole("dimensions", kw["dimensions"])
    for key in ("extra_body", "extra_headers", "provider"):
        if kw[key] is not None and not isinstance(kw[key], Mapping):
            raise TypeError(f"{key} must be a dict, got {type(kw[key]).__name__}")
    timeout = kw["timeout"]
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    policy = retry.RetryPolicy(retry.check_retries(kw["max_retries"]), retry.check_retry_wait(kw["max_retry_wait"]))
    from ._routing import parse_slug

    pinned = parse_slug(model)  # "x/y@provider": the plain slug, with OpenRouter's provider routing
    found = route(model, None)
    if found is None:
        endpoint: Any = Endpoint(base_url, api_key)
        wire = pinned.model
    elif pinned.provider is not None:
        raise ValueError(
            f"{model!r}: a provider after '@' picks one of OpenRouter's providers, but this slug goes to another "
            "endpoint (a registered prefix or local/); drop the '@...' suffix"
        )
    else:
        endpoint, wire = found.endpoint, found.wire_model
        if model.startswith("local/"):  # llama.cpp serves embeddings from a server started in embedding mode
            from ._local import LocalEndpoint

            endpoint = LocalEndpoint(endpoint.path, embedding=True)
    fields = {k: kw[k] for k in ("dimensions", "input_type", "user", "provider", "extra_body") if kw[k] is not None}
    fields = pinned.apply(fields)  # a provider= at odds with the slug's provider raises here
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    return _Job(model, wire, endpoint, batches, fields, kw["extra_headers"], timeout, policy, concurrency)


def parse_embeddings(raw: Any, count: int, model: str) -> tuple[list[list[float]], Reply]:
    """The vectors of an ``/embeddings`` answer in input order, and its usage and provenance as a `Reply`.

    An error envelope (OpenRouter sends one under HTTP 200 when no provider answered) raises irouter's error for
    its code; an answer without one vector per input raises `APIResponseError`. A vector per token (llama.cpp
    with a model that does no pooling) is averaged into one; a base64 vector is decoded (little-endian float32).
    """
    if isinstance(raw, Mapping) and raw.get("error") is not None:
        raise error_from_body(200, dict(raw), model=model)
    data = raw.get("data") if isinstance(raw, Mapping) else None
    if not isinstance(data, list) or len(data) != count:
        got = len(data) if isinstance(data, list) else "no"
        raise APIResponseError(f"The embeddings answer has {got} vectors for {count} texts", model=model, body=raw)
    vectors: list[list[float] | None] = [None] * count
    for position, item in enumerate(data):
        index = item.get("index", position) if isinstance(item, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < count or vectors[index] is not None:
            raise APIResponseError(f"The embeddings answer has a bad index: {index!r}", model=model, body=raw)
        vectors[index] = _vector(item.get("embedding"), model, raw)
    usage = raw.get("usage") if isinstance(raw.get("usage"), Mapping) else None
    reply = Reply(
        message={},
        content="",
        usage=dict(usage) if usage else None,
        model=raw.get("model"),
        provider=raw.get("provider"),
        id=raw.get("id"),
        raw=dict(raw),
    )
    return [v for v in vectors if v is not None], reply


def _vector(value: Any, model: str, raw: Any) -> list[float]:
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except ValueError:
            data = b"?"  # not base64: refused below
        if data and len(data) % 4 == 0:
            return list(struct.unpack(f"<{len(data) // 4}f", data))
        raise APIResponseError(
            "The embeddings answer has a text vector that is not base64 float32s", model=model, body=raw
        )
    if isinstance(value, list) and value and all(isinstance(row, list) for row in value):  # one per token
        width = len(value[0])
        return [sum(row[i] for row in value) / len(value) for i in range(width)]
    if isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    raise APIResponseError("The embeddings answer has a vector that is not a list of numbers", model=model, body=raw)


def _entry(job: _Job, reply: Reply, number: int, started: float, wall: float) -> LedgerEntry:
    return entry_for(
        job.model, reply.usage, reply, started=started, wall_started=wall, ttft=None, step=number, streamed=False
    )


def _run_batch(job: _Job, number: int) -> list[list[float]]:
    batch = job.batches[number]
    body = job.body(batch)

    def attempt() -> tuple[list[list[float]], Reply]:
        raw = job.endpoint.post(
            EMBEDDINGS_PATH, body, model=job.model, extra_headers=job.extra_headers, timeout=job.timeout
        )
        return parse_embeddings(raw, len(batch), job.model)

    started, wall = time.monotonic(), time.time()
    vectors, reply = retry.call(attempt, job.policy)
    job.ledger[number] = _entry(job, reply, number + 1, started, wall)
    return vectors


async def _arun_batch(job: _Job, number: int) -> list[list[float]]:
    batch = job.batches[number]
    body = job.body(batch)

    async def attempt() -> tuple[list[list[float]], Reply]:
        raw = await job.endpoint.apost(
            EMBEDDINGS_PATH, body, model=job.model, extra_headers=job.extra_headers, timeout=job.timeout
        )
        return parse_embeddings(raw, len(batch), job.model)

    started, wall = time.monotonic(), time.time()
    vectors, reply = await retry.acall(attempt, job.policy)
    job.ledger[number] = _entry(job, reply, number + 1, started, wall)
    return vectors


def _result(job: _Job, parts: list[list[list[float]]]) -> Embeddings:
    return Embeddings((v for part in parts for v in part), job.model, [e for e in job.ledger if e is not None])


def embed(
    texts: str | Iterable[str],
    model: str = DEFAULT_MODEL,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    dimensions: int | None = None,
    input_type: str | None = None,
    provider: Mapping[str, Any] | None = None,
    user: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    max_retry_wait: float = retry.DEFAULT_MAX_RETRY_WAIT,
    timeout: float | None = None,
    extra_body: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Embeddings:
    """Embed ``texts`` (a string or a list of strings) with ``model``: one vector per text, in order.

    Args:
        model: an embedding model's slug: OpenRouter's (``openai/text-embedding-3-small``), a registered
            endpoint's (``ollama/nomic-embed-text``), or ``local/smollm2`` (llama.cpp on this machine, offline).
        base_url, api_key: the server, as for `Call` (OpenRouter and ``OPENROUTER_API_KEY`` by default).
        dimensions, input_type, provider, user: request fields, sent as they are (``None`` leaves them out);
            anything else goes in ``extra_body``.
        batch_size: most texts per request; ``concurrency``: most requests at once.
        max_retries, max_retry_wait, timeout: as for `Call`; each batch is retried on its own.

    Returns `Embeddings`, a list of vectors (lists of floats) with ``.ledger`` (one entry per batch), ``.usage``,
    ``.cost`` and ``.to_numpy()``. The first batch that fails raises its error (the others are not waited for).
    """
    job = _job(texts, model, base_url, api_key, _kw(locals()))
    job.ledger = [None] * len(job.batches)
    if len(job.batches) <= 1 or job.concurrency == 1:
        return _result(job, [_run_batch(job, n) for n in range(len(job.batches))])
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from ._cancel import results_in_order

    pool = ThreadPoolExecutor(min(job.concurrency, len(job.batches)), thread_name_prefix="irouter-embed")
    try:
        futures = [pool.submit(contextvars.copy_context().run, _run_batch, job, n) for n in range(len(job.batches))]
        return _result(job, results_in_order(futures))
    finally:  # after a failure or Ctrl-C, batches not started yet are dropped
        pool.shutdown(wait=False, cancel_futures=True)


async def aembed(
    texts: str | Iterable[str],
    model: str = DEFAULT_MODEL,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    dimensions: int | None = None,
    input_type: str | None = None,
    provider: Mapping[str, Any] | None = None,
    user: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_retries: int = retry.DEFAULT_MAX_RETRIES,
    max_retry_wait: float = retry.DEFAULT_MAX_RETRY_WAIT,
    timeout: float | None = None,
    extra_body: Mapping[str, Any] | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> Embeddings:
    """`embed`, awaited: the batches run as tasks, at most ``concurrency`` at a time. If one fails, the others are
    cancelled and its error raises."""
    import asyncio

    job = _job(texts, model, base_url, api_key, _kw(locals()))
    job.ledger = [None] * len(job.batches)
    gate = asyncio.Semaphore(job.concurrency)

    async def one(number: int) -> list[list[float]]:
        async with gate:
            return await _arun_batch(job, number)

    tasks = [asyncio.ensure_future(one(n)) for n in range(len(job.batches))]
    try:
        parts = await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    return _result(job, list(parts))


def _kw(scope: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scope.items() if k not in ("texts", "model", "base_url", "api_key")}
