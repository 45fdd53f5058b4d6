"""The double's Batch API: OpenRouter's documented batch routes (``openrouter-protocol.md`` section 13).

Written from the documentation on its own (it shares no code with irouter's client side, so a wrong reading there
is not mirrored here): ``POST/GET /api/beta/batches``, ``GET/DELETE /api/beta/batches/{id}``. A batch moves through
``validating``, ``in_progress``, ``finalizing`` and ``completed``, one status every `BatchQueue.step` seconds
(while not paused); `BatchQueue.end_next` makes the next batches end ``failed`` or ``expired`` instead. Each
request's answer comes from the double's normal replies (queued or default), decided when the batch is submitted:
a queued `Error` becomes that request's ``error`` result.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ._replies import Error, Raw

if TYPE_CHECKING:
    from ._server import OpenRouterDouble, Request, _Handler

PREFIX = "/api/beta/batches"
ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings")
STAGES = ("validating", "in_progress", "finalizing", "completed")
TERMINAL = ("completed", "failed", "expired", "cancelled")
PRICE_SHARE = 0.5
"""What a batch request costs of the normal price (the docs: "typically 50 %")."""
_REFUSED_PARTS = {"image_url", "input_audio", "video_url", "file", "input_image", "input_file", "image", "document"}
_REFUSED_FIELDS = ("modalities", "audio", "image_config")


@dataclass
class _Batch:
    id: str
    model: str
    endpoint: str
    created_at: int
    results: list[dict[str, Any]]
    outcome: tuple[str, str] | None = None
    """How it ends when not completed: (status, error message)."""
    elapsed: float = 0.0
    seen: float = field(default_factory=time.monotonic)
    finalized_at: int | None = None
    provider: dict[str, Any] | None = None
    """The batch's routing (``{"only": [...]}``), used by requests that route nothing themselves."""


class BatchQueue:
    """The batches the double holds (``router.batches``). Thread-safe.

    Attributes:
        step: seconds each of ``validating``, ``in_progress`` and ``finalizing`` lasts.
        submissions: the raw bytes of every accepted submission, in order.
        served: ``(batch id, status)`` of every batch object ``GET /batches/{id}`` answered, in order.
    """

    def __init__(self, double: OpenRouterDouble, step: float = 0.05) -> None:
        self.double = double
        self.step = step
        self.paused = False
        self.submissions: list[bytes] = []
        self.served: list[tuple[str, str]] = []
        self._batches: dict[str, _Batch] = {}
        self._ends: deque[tuple[str, str]] = deque()
        self._refusals: deque[Error] = deque()
        self._lock = threading.Lock()

    def end_next(self, status: str = "failed", message: str = "Batch failed upstream", count: int = 1) -> None:
        """Make the next ``count`` batches submitted end ``status`` (``"failed"`` or ``"expired"``)."""
        if status not in ("failed", "expired", "cancelled"):
            raise ValueError(f"a batch ends failed, expired or cancelled, not {status!r}")
        with self._lock:
            self._ends.extend([(status, message)] * count)

    def refuse_next(self, *errors: Error) -> None:
        """Answer the next submissions with these errors (in the Batch API's ``{"error": {"code", "message"}}``
        body, with ``Retry-After`` when given), one each, before accepting again."""
        with self._lock:
            self._refusals.extend(errors)

    def pause(self) -> None:
        """Hold every batch in its current status until `resume`."""
        with self._lock:
            self._tick()
            self.paused = True

    def resume(self) -> None:
        with self._lock:
            for batch in self._batches.values():
                batch.seen = time.monotonic()
            self.paused = False

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return list(self._batches)

    def status(self, batch_id: str) -> str:
        with self._lock:
            self._tick()
            return self._status(self._batches[batch_id])

    # ------------------------------------------------------------------------------------------ time
    def _tick(self) -> None:
        now = time.monotonic()
        for batch in self._batches.values():
            if not self.paused:
                batch.elapsed += now - batch.seen
            batch.seen = now

    def _status(self, batch: _Batch) -> str:
        stage = min(int(batch.elapsed / self.step) if self.step > 0 else 3, 3)
        if stage == 3:
            if batch.finalized_at is None:
                batch.finalized_at = int(time.time())
            return batch.outcome[0] if batch.outcome else "completed"
        # a failed batch fails once validated; an expired one "runs" first
        if batch.outcome and stage >= 1 and (batch.outcome[0] == "failed" or stage == 2):
            if batch.finalized_at is None:
                batch.finalized_at = int(time.time())
            return batch.outcome[0]
        return STAGES[stage]

    def _object(self, batch: _Batch, results: bool) -> dict[str, Any]:
        status = self._status(batch)
        done = status == "completed"
        failed = sum(1 for r in batch.results if r["error"] is not None) if done else 0
        usage = None
        if done:
            bodies = [r["response"]["body"] for r in batch.results if r["response"] is not None]
            usages = [b.get("usage") or {} for b in bodies]
            prompt = sum(u.get("prompt_tokens", 0) for u in usages)
            completion = sum(u.get("completion_tokens", 0) for u in usages)
            cost = round(sum(u.get("cost", 0.0) for u in usages), 12)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "cost": cost,
                "is_byok": False,
            }
        out: dict[str, Any] = {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "model": batch.model,
            "completion_window": "24h",
            "status": status,
            "created_at": batch.created_at,
            "finalized_at": batch.finalized_at if status in TERMINAL else None,
            "request_counts": {
                "total": len(batch.results),
                "completed": len(batch.results) - failed if done else 0,
                "failed": failed,
            },
            "usage": usage,
        }
        if results:
            out["results"] = batch.results if done else None
        out["error"] = {"message": batch.outcome[1]} if batch.outcome and status == batch.outcome[0] else None
        return out

    # ------------------------------------------------------------------------------------------ routes
    def handle(self, handler: _Handler, request: Request) -> None:
        """Answer one request under `PREFIX`."""
        if not handler._authorized(request):
            return
        rest = request.path.removeprefix(PREFIX).strip("/")
        if request.method == "POST" and not rest:
            self._submit(handler, request)
        elif request.method == "GET" and not rest:
            self._list(handler, request)
        elif request.method in ("GET", "DELETE") and "/" not in rest:
            with self._lock:
                self._tick()
                batch = self._batches.get(rest)
                if batch is None:
                    answer: tuple[int, Any] = (404, _error(404, f"Batch {rest} not found"))
                elif request.method == "GET":
                    answer = (200, self._object(batch, results=True))
                    self.served.append((rest, answer[1]["status"]))
                elif self._status(batch) not in TERMINAL:
                    answer = (409, _error(409, f"Batch {rest} is {self._status(batch)}: only a finished batch can go"))
                else:
                    del self._batches[rest]
                    deletion = {"openrouter": "deleted", "upstream": {"provider": "OpenAI", "status": "deleted"}}
                    answer = (200, {"id": rest, "object": "batch", "deletion": deletion})
            handler._json(*answer)
        else:
            handler._json(404, _error(404, f"Not Found: {request.path}"))

    def _list(self, handler: _Handler, request: Request) -> None:
        limit = max(1, min(100, int((request.query.get("limit") or ["20"])[0])))
        after = (request.query.get("after") or [""])[0]
        with self._lock:
            self._tick()
            newest = sorted(self._batches.values(), key=lambda b: (b.created_at, b.id), reverse=True)
            ids = [b.id for b in newest]
            start = ids.index(after) + 1 if after in ids else 0
            page = newest[start : start + limit]
            data = [self._object(b, results=False) for b in page]
        handler._json(
            200,
            {
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "has_more": start + limit < len(newest),
                "last_id": data[-1]["id"] if data else None,
                "object": "list",
            },
        )

    def _submit(self, handler: _Handler, request: Request) -> None:
        with self._lock:
            refusal = self._refusals.popleft() if self._refusals else None
        if refusal is not None:
            after = {"Retry-After": f"{refusal.retry_after:g}"} if refusal.retry_after is not None else None
            handler._json(refusal.status, _error(refusal.status, refusal.message), after)
            return
        problem, batch = self._read(request.body)
        if problem is not None or batch is None:
            handler._json(400, _error(400, problem or "Invalid batch"))
            return
        with self._lock:
            self._tick()
            if batch.outcome is None and self._ends:
                batch.outcome = self._ends.popleft()
            self._batches[batch.id] = batch
            self.submissions.append(request.body)
            handler._json(202, self._object(batch, results=True))

    def _read(self, raw: bytes) -> tuple[str | None, _Batch | None]:
        """The submission read as the server stream-parses it: ``endpoint`` and ``model`` must come first."""
        try:
            pairs = json.loads(raw, object_pairs_hook=lambda p: p)
        except ValueError:
            return "Invalid JSON body", None
        if not isinstance(pairs, list):
            return "The body must be a JSON object", None
        order = [k for k, _ in pairs]
        if "requests" in order and any(k not in order[: order.index("requests")] for k in ("endpoint", "model")):
            return "endpoint and model must come before requests in the request body", None
        body = json.loads(raw)
        endpoint, model, requests = body.get("endpoint"), body.get("model"), body.get("requests")
        if endpoint not in ENDPOINTS:
            return f"endpoint must be one of {', '.join(ENDPOINTS)}", None
        if not isinstance(model, str) or not model:
            return "model is required", None
        if not isinstance(requests, list) or not requests:
            return "requests must be a non-empty array", None
        provider = body.get("provider")
        if provider is not None and (
            not isinstance(provider, dict)
            or set(provider) != {"only"}
            or not isinstance(provider["only"], list)
            or not all(isinstance(p, str) for p in provider["only"])
        ):
            return "provider: only provider.only (a list of provider slugs) is supported in batches", None
        ids = [r.get("custom_id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
            return "every request needs a unique custom_id", None
        if any(not isinstance(r.get("body"), dict) or r["body"].get("model", model) != model for r in requests):
            return "every request needs a body, whose model (if any) is the batch's", None
        created = int(time.time())
        batch_id = "batch_" + "".join(random.choices("0123456789abcdef", k=24))
        batch = _Batch(batch_id, model, endpoint, created, [], provider=provider)
        refused = next((why for r in requests if (why := _refused(r["body"]))), None)
        if refused:
            batch.outcome = ("failed", f"Validation failed: {refused}")
        else:
            routed = [
                r["body"] if provider is None or "provider" in r["body"] else {**r["body"], "provider": provider}
                for r in requests
            ]
            batch.results = [self._answer(model, r["custom_id"], b) for r, b in zip(requests, routed, strict=True)]
        return None, batch

    def _answer(self, model: str, custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request's result, from the double's normal replies, at batch prices."""
        request = {"model": model, **body}
        reply = self.double._next(model, request)
        item: dict[str, Any] = {"id": "batch_req_" + custom_id[:24], "custom_id": custom_id}
        if isinstance(reply, Error):
            error = {"message": reply.message, "type": "invalid_request_error", "param": None}
            return {**item, "response": None, "error": error}
        if isinstance(reply, Raw):
            completion = json.loads(reply.body)
        else:
            rendered = self.double.render(request, reply)
            if rendered.usage is not None and "cost" in rendered.usage:
                rendered.usage["cost"] = round(rendered.usage["cost"] * PRICE_SHARE, 12)
                self.double.generations[rendered.id]["total_cost"] = rendered.usage["cost"]
            rendered = replace(rendered, id=rendered.id.replace("gen-", "gen-batch-", 1))
            completion = rendered.completion()
        response = {"status_code": 200, "request_id": "request_" + custom_id[:16], "body": completion}
        return {**item, "response": response, "error": None}


def _refused(body: dict[str, Any]) -> str | None:
    """The documented validation: text only, no non-text output."""
    for name in _REFUSED_FIELDS:
        if body.get(name) is not None and body.get(name) != ["text"]:
            return f"{name} (non-text output) is not supported in batches"
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") in _REFUSED_PARTS:
                return f"{part.get('type')} content is not supported in batches (text only)"
    return None


def _error(code: int, message: str) -> dict[str, Any]:
    """The Batch API's error body (the SDK's ``BatchErrorResponse``)."""
    return {"error": {"code": code, "message": message}}
