"""Everything irouter knows of OpenRouter's Batch API wire format, in one place: pure functions, no I/O.

The evidence is documentation only (no captured traffic): ``openrouter-protocol.md`` section 13 (the batch
quickstart page and the official Python SDK's reference) and the docs' own examples copied to
``tests/data/openrouter/batch-*-doc-example.*``. When real traffic shows a difference, correct it here: the routes,
the field order of a submission, the status names, the limits, what the validation refuses, how a result reads.

- Routes: ``POST/GET {origin}/api/beta/batches``, ``GET/DELETE .../{id}`` (not under ``/api/v1``; `batches_base`).
- A submission is ``{"endpoint", "model", "provider"?, "requests": [{"custom_id", "body"}]}`` with ``endpoint``
  and ``model`` before ``requests`` in the JSON text (the server stream-parses it; ``requests`` first is a 400):
  `submission` writes the bytes itself, never through a key-sorting encoder. ``model`` is the plain slug (a
  ``model@provider`` slug's provider goes in ``provider: {"only": [...]}``, the one routing key documented for a
  batch, and in each request's own routing, as a normal request sends it).
- A batch moves ``validating -> in_progress -> finalizing -> completed`` (or ``failed``, ``expired``,
  ``cancelling``, ``cancelled``); ``results`` come inline once ``completed``, each with exactly one of ``response``
  or ``error`` (`read_result`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROUTE_PREFIX = "/api/beta"
"""Where the batch routes live, on the base URL's host (the docs; a newer docs page says ``/api/v1``)."""
ROUTE = "batches"
ENDPOINT = "/v1/chat/completions"
"""The batch ``endpoint`` a grid's cells use (chat completions bodies)."""
COMPLETION_WINDOW = "24h"
"""The only documented value (not sent: it is the default)."""

MAX_REQUESTS = 5_000
"""Requests per batch at most (OpenRouter's Batch API guide: "up to 5,000 requests and 200 MB per batch")."""
MAX_BYTES = 200 * 1000 * 1000
"""Bytes of one submission at most (the same page)."""
PRICE_SHARE = 0.5
"""Batch requests are "typically billed at 50 % of the model's per-token price" (what the forecast assumes)."""

VALIDATING, IN_PROGRESS, FINALIZING, COMPLETED = "validating", "in_progress", "finalizing", "completed"
FAILED, EXPIRED, CANCELLING, CANCELLED = "failed", "expired", "cancelling", "cancelled"
STATUSES = (VALIDATING, IN_PROGRESS, FINALIZING, COMPLETED, FAILED, EXPIRED, CANCELLING, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})
"""Statuses a batch never leaves (only these can be deleted: ``409`` otherwise)."""

REFUSED_PARTS = {
    "image_url": "an image",
    "input_image": "an image",
    "image": "an image",
    "input_audio": "audio",
    "audio": "audio",
    "video_url": "a video",
    "video": "a video",
    "file": "a file",
    "input_file": "a file",
    "document": "a document",
}
"""Content parts the Batch API refuses in validation ("currently text-only"), and how to name them."""
REFUSED_FIELDS = {
    "modalities": "non-text output (modalities)",
    "audio": "audio output",
    "image_config": "image output (image_config)",
}
"""Request fields asking for non-text output, refused by the Batch API."""


def batches_base(base_url: str) -> str:
    """The base URL of the batch routes for a chat ``base_url``: its host with `ROUTE_PREFIX`
    (``https://openrouter.ai/api/v1`` -> ``https://openrouter.ai/api/beta``). A path not ending in ``/v1`` keeps
    its path and gets ``/beta`` instead of the last part."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path
    if path.endswith("/api/v1") or path == "/api/v1":
        path = path[: -len("/api/v1")] + ROUTE_PREFIX
    else:
        path = path.rsplit("/", 1)[0] + "/" + ROUTE_PREFIX.rsplit("/", 1)[1]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def custom_id(key: str) -> str:
    """The ``custom_id`` of a cell: its key (a sha256, unique within a batch since duplicates share one cell). Its
    64 hex characters also fit the strictest upstream rule known (Anthropic's: 1-64 of ``[A-Za-z0-9_-]``); the
    OpenRouter docs state no limit."""
    return key


def request_line(key: str, body: Mapping[str, Any]) -> bytes:
    """One item of ``requests``: ``{"custom_id": ..., "body": ...}``, as JSON bytes (``body`` without ``model``:
    the batch names it once)."""
    fields = {k: v for k, v in body.items() if k not in ("model", "stream", "stream_options")}
    return b'{"custom_id":' + _dumps(custom_id(key)) + b',"body":' + _dumps(fields) + b"}"


def submission(
    model: str, lines: Sequence[bytes], endpoint: str = ENDPOINT, provider: Mapping[str, Any] | None = None
) -> bytes:
    """The submit body's bytes: ``endpoint`` and ``model`` first, then the batch's ``provider`` routing if any,
    then ``requests`` (field order matters)."""
    head = b'{"endpoint":' + _dumps(endpoint) + b',"model":' + _dumps(model)
    if provider:
        head += b',"provider":' + _dumps(dict(provider))
    return head + b',"requests":[' + b",".join(lines) + b"]}"


def batch_provider(routing: Any) -> dict[str, Any] | None:
    """The batch-level ``provider`` for requests routed with ``routing`` (their body's ``provider``): its
    ``only`` list, the one routing key the Batch API documents for a batch (the requests keep their own)."""
    only = routing.get("only") if isinstance(routing, Mapping) else None
    return {"only": list(only)} if isinstance(only, (list, tuple)) and only else None


SUBMISSION_OVERHEAD = 256
"""Bytes of a submission besides its request lines (endpoint, model, brackets), generously."""


def split(lines: Sequence[bytes], max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> list[range]:
    """Index ranges of ``lines`` that each fit one batch (at most ``max_requests`` lines and ``max_bytes`` bytes
    with the head). A single line bigger than a batch raises ``ValueError`` naming its index."""
    out: list[range] = []
    start, size = 0, SUBMISSION_OVERHEAD
    for index, line in enumerate(lines):
        need = len(line) + 1
        if SUBMISSION_OVERHEAD + need > max_bytes:
            raise ValueError(f"request {index} alone is bigger than a batch may be ({max_bytes:,} bytes)")
        if index > start and (index - start >= max_requests or size + need > max_bytes):
            out.append(range(start, index))
            start, size = index, SUBMISSION_OVERHEAD
        size += need
    if start < len(lines):
        out.append(range(start, len(lines)))
    return out


def refusal(body: Mapping[str, Any]) -> str | None:
    """Why the Batch API would refuse this chat-completions body (its validation: text only, no non-text
    output), or ``None`` when it would take it."""
    for name, what in REFUSED_FIELDS.items():
        value = body.get(name)
        if name == "modalities" and isinstance(value, list) and all(m == "text" for m in value):
            continue
        if value is not None:
            return f"asks for {what}"
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind in REFUSED_PARTS:
                    return f"sends {REFUSED_PARTS[kind]} (the Batch API takes text only)"
    return None


@dataclass(frozen=True)
class BatchInfo:
    """A batch object as the server describes it (``results`` read separately by `results_of`)."""

    id: str
    model: str | None
    status: str
    total: int
    completed: int
    failed: int
    created_at: int | None
    usage: dict[str, Any] | None
    error: str | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def cost(self) -> float | None:
        """What OpenRouter charges for the whole batch (``usage.cost`` once completed)."""
        cost = (self.usage or {}).get("cost")
        return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None


def read_batch(data: Any) -> BatchInfo:
    """A batch object (submit, poll or list item) read into `BatchInfo`; ``ValueError`` when it is not one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("id"), str) or not isinstance(data.get("status"), str):
        raise ValueError(f"not a batch object: {str(data)[:200]}")
    counts = data.get("request_counts") or {}
    error = data.get("error")
    message = error.get("message") if isinstance(error, Mapping) else (error if isinstance(error, str) else None)
    usage = data.get("usage")
    return BatchInfo(
        id=data["id"],
        model=data.get("model"),
        status=data["status"],
        total=int(counts.get("total") or 0),
        completed=int(counts.get("completed") or 0),
        failed=int(counts.get("failed") or 0),
        created_at=data.get("created_at"),
        usage=dict(usage) if isinstance(usage, Mapping) else None,
        error=message,
    )


@dataclass(frozen=True)
class Result:
    """One request's outcome in a completed batch: exactly one of ``body`` (the endpoint's normal response) or
    ``error`` (``{"message", "type", "param", "error_type"?}``)."""

    custom_id: str
    body: dict[str, Any] | None
    status_code: int | None
    error: dict[str, Any] | None


def read_result(item: Any) -> Result:
    """One item of ``results``; ``ValueError`` when it has neither or both of ``response`` and ``error``."""
    if not isinstance(item, Mapping) or not isinstance(item.get("custom_id"), str):
        raise ValueError(f"not a batch result: {str(item)[:200]}")
    response, error = item.get("response"), item.get("error")
    if (response is None) == (error is None):
        raise ValueError(f"a batch result must have exactly one of response or error: {str(item)[:200]}")
    if response is not None:
        if not isinstance(response, Mapping) or not isinstance(response.get("body"), Mapping):
            raise ValueError(f"a batch result's response has no body: {str(item)[:200]}")
        return Result(item["custom_id"], dict(response["body"]), response.get("status_code"), None)
    return Result(item["custom_id"], None, None, dict(error) if isinstance(error, Mapping) else {"message": error})


def results_of(data: Mapping[str, Any]) -> list[Result]:
    """The inline ``results`` of a completed batch (``[]`` when there are none)."""
    return [read_result(item) for item in data.get("results") or []]


def error_message(data: Any) -> str:
    """The message of a Batch API error body ``{"error": {"code", "message"}}`` (or the text as it is)."""
    if isinstance(data, Mapping) and isinstance(data.get("error"), Mapping):
        return str(data["error"].get("message") or data["error"])
    return str(data)[:300]


def list_query(limit: int = 100, after: str | None = None) -> dict[str, str]:
    """The query of ``GET /batches``: ``limit`` 1-100, ``after=<previous last_id>``."""
    query = {"limit": str(max(1, min(100, limit)))}
    if after:
        query["after"] = after
    return query


def read_page(data: Any) -> tuple[list[BatchInfo], str | None]:
    """A list page: its batches and the ``after`` of the next page (``None`` when there is none)."""
    items = [read_batch(item) for item in (data or {}).get("data") or []]
    more = bool((data or {}).get("has_more"))
    return items, ((data or {}).get("last_id") if more else None)


def _dumps(value: Any) -> bytes:
    """JSON bytes in the order given (never sorted), no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
