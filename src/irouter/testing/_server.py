"""`OpenRouterDouble`: a real HTTP server on loopback that speaks OpenRouter's wire format."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._batches import PREFIX as BATCH_PREFIX
from ._batches import BatchQueue
from ._catalog import default_models, endpoints_body
from ._replies import (
    PRICES,
    Error,
    Raw,
    Rendered,
    Responder,
    Script,
    Text,
    ToolCall,
    as_script,
    echo,
    generation_id,
    usage_for,
)

KEEPALIVE = b"\n" + b" " * 9 + b"\n"
"""The whitespace unit OpenRouter writes before a non-streaming JSON body while the model works."""
SSE_COMMENT = b": OPENROUTER PROCESSING\n\n"
DEFAULT_KEY = "sk-or-v1-" + "0" * 64
PREFIX = "/api/v1"


@dataclass
class Request:
    """One request the double received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes
    json: Any = None
    time: float = field(default_factory=time.time)
    client: tuple[str, int] | None = None
    """The client's address: requests with the same one came over the same (kept-alive) connection."""


class OpenRouterDouble:
    """A loopback OpenRouter for tests: queue replies, make requests through irouter, inspect what arrived.

    >>> from irouter import Chat
    >>> from irouter.testing import OpenRouterDouble
    >>> with OpenRouterDouble() as router:
    ...     router.queue("Hi there!")
    ...     chat = Chat("openai/gpt-4o-mini", base_url=router.base_url, api_key=router.api_key)
    ...     chat("Hello")
    ...     router.requests[-1].json["messages"][-1]
    'Hi there!'
    {'role': 'user', 'content': 'Hello'}

    Batch API routes under ``/api/beta/batches`` (see `BatchQueue`, ``router.batches``). Routes (under ``/api/v1``):
    ``POST /chat/completions`` (JSON with leading keep-alive whitespace, or SSE with
    ``: OPENROUTER PROCESSING`` comments and a final usage chunk), ``GET /models``, ``GET /key``,
    ``GET /credits``, ``GET /generation?id=``, ``POST /embeddings`` (see `queue_embeddings`). Errors use
    OpenRouter's envelope.

    Args:
        api_key: the only key accepted (401 ``User not found.`` otherwise; 401 ``No auth credentials found``
            without one). ``None`` accepts any bearer key.
        require_auth: ``False`` accepts requests without any key, like a local server.
        latency: seconds every completion takes unless its reply says otherwise.
        keepalive_interval: seconds between keep-alive bytes while a completion is delayed.
        usage_style: the final usage chunk of streams: ``"repeat-finish"`` (2026), ``"empty-choices"`` or
            ``"null-finish"`` (2025).
        report_usage: ``False`` leaves usage out entirely, like some OpenAI-compatible servers.
        models: the records ``GET /models`` serves (a small built-in catalog by default).
        endpoints: bodies ``GET /models/{author}/{slug}/endpoints`` serves, by model id (a captured body, say);
            a model of ``models`` without one gets three made-up providers derived from its record, any other
            model a 404 ``Resource not found``. A request pinned to a provider (``provider.only``/``order``) is
            answered as that provider (its display name when the endpoints list names it).
        prices: dollars per (prompt, completion) token used to compute ``usage.cost``.
        port: ``0`` picks a free port.
    """

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_KEY,
        require_auth: bool = True,
        latency: float = 0.0,
        keepalive_interval: float = 0.05,
        usage_style: str = "repeat-finish",
        report_usage: bool = True,
        models: list[dict[str, Any]] | None = None,
        prices: tuple[float, float] = PRICES,
        endpoints: Mapping[str, Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if usage_style not in ("repeat-finish", "empty-choices", "null-finish"):
            raise ValueError(f"unknown usage_style {usage_style!r}")
        self._key = api_key
        self.require_auth = require_auth
        self.latency = latency
        self.keepalive_interval = keepalive_interval
        self.usage_style = usage_style
        self.report_usage = report_usage
        self.models = models if models is not None else default_models()
        self.prices = prices
        self.endpoints: dict[str, Any] = dict(endpoints or {})
        self.default: Responder = echo
        """Answers when nothing is queued (by default: ``"You said: <last user text>"``)."""
        self.requests: list[Request] = []
        self.generations: dict[str, dict[str, Any]] = {}
        self._queues: dict[str | None, deque[Script | str | Responder]] = {}
        self._get_queues: dict[str, deque[Error | Raw]] = {}
        self._embedding_queue: deque[Error | Raw | dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self.batches = BatchQueue(self)
        """The Batch API's batches (``/api/beta/batches``): their timing, failures on request, submissions."""
        self._server = _Server((host, port), _Handler)
        self._server.double = self
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def api_key(self) -> str:
        """The key to give irouter (any string works when the double accepts any key)."""
        return self._key or DEFAULT_KEY

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PREFIX}"

    def start(self) -> OpenRouterDouble:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="openrouter-double", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> OpenRouterDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"OpenRouterDouble(base_url={self.base_url!r}, requests={len(self.requests)})"

    # ------------------------------------------------------------------------------------------ scripting
    def queue(self, *replies: Script | str | Responder, model: str | None = None) -> OpenRouterDouble:
        """Queue replies, answered in order. ``model=`` keeps them for requests to that model only.

        A reply is a string (a text answer), `Text`, `Error`, `Raw`, or a function of the request body
        returning one of those.
        """
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)
        return self

    def queue_get(self, path: str, *replies: Error | Raw) -> OpenRouterDouble:
        """Queue answers for ``GET`` requests to ``path`` (e.g. ``"/models"``), used in order before the normal
        answer: to make the catalog fetch fail, say."""
        with self._lock:
            self._get_queues.setdefault("/" + path.strip("/"), deque()).extend(replies)
        return self

    def queue_embeddings(self, *replies: Error | Raw | dict[str, Any]) -> OpenRouterDouble:
        """Queue answers for ``POST /embeddings``, used in order before the normal answer (deterministic vectors
        with usage and cost, see `irouter.testing._embeddings`): an `Error`, `Raw` bytes, or a body to send as is."""
        with self._lock:
            self._embedding_queue.extend(replies)
        return self

    @property
    def embedding_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``POST /embeddings`` request, in order."""
        return [r.json for r in list(self.requests) if r.method == "POST" and r.path.endswith("/embeddings")]

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self._get_queues.clear()
            self._queues.clear()
            self._embedding_queue.clear()
            self.requests.clear()
            self.generations.clear()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of every ``POST /chat/completions`` request, in order."""
        return [r.json for r in list(self.requests) if r.method == "POST" and r.path.endswith("/chat/completions")]

    def _next(self, model: str | None, request: dict[str, Any]) -> Script:
        with self._lock:
            for key in (model, None):
                queue = self._queues.get(key)
                if queue:
                    item = queue.popleft()
                    break
            else:
                item = self.default
        return as_script(item, request)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def endpoints_of(self, model: str) -> dict[str, Any] | None:
        """The body of ``GET /models/{model}/endpoints`` (``None``: 404)."""
        if model in self.endpoints:
            return dict(self.endpoints[model])
        record = next((m for m in self.models if m.get("id") == model), None)
        return endpoints_body(record) if record is not None else None

    def _provider(self, request: dict[str, Any], reply: Text) -> str:
        """Who answers: the reply's provider, else the one the request pins (by display name), else OpenAI."""
        if reply.provider is not None:
            return reply.provider
        routing = request.get("provider")
        pinned = None if not isinstance(routing, dict) else (routing.get("only") or routing.get("order") or [None])[0]
        if not isinstance(pinned, str):
            return "OpenAI"
        listed = self.endpoints_of(str(request.get("model"))) or {}
        for endpoint in (listed.get("data") or {}).get("endpoints") or []:
            if pinned.lower() in (str(endpoint.get("tag")).lower(), str(endpoint.get("tag")).split("/")[0].lower()):
                return str(endpoint.get("provider_name"))
        return pinned

    def render(self, request: dict[str, Any], reply: Text) -> Rendered:
        """Fix ids, served model, tool calls and usage for a reply to ``request``."""
        calls = [call.wire(i) for i, call in enumerate(reply.tool_calls)]
        usage = reply.usage if reply.usage is not None else usage_for(request, reply, self.prices)
        rendered = Rendered(
            reply=reply,
            request=request,
            id=generation_id(),
            model=reply.model or str(request.get("model")),
            usage=usage if self.report_usage else None,
            calls=calls,
            provider=self._provider(request, reply),
        )
        with self._lock:
            self.generations[rendered.id] = {
                "id": rendered.id,
                "model": rendered.model,
                "provider_name": rendered.provider,
                "total_cost": (usage or {}).get("cost"),
                "tokens_prompt": (usage or {}).get("prompt_tokens"),
                "tokens_completion": (usage or {}).get("completion_tokens"),
                "streamed": bool(request.get("stream")),
                "finish_reason": rendered.finish_reason,
            }
        return rendered


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256
    double: OpenRouterDouble

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up (a cancelled stream, a closed event loop) are normal here: stay quiet."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small writes go out at once, as from a real server (no 40 ms ACK stalls)
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ------------------------------------------------------------------------------------------ plumbing
    @property
    def double(self) -> OpenRouterDouble:
        return self.server.double

    def _read(self) -> Request:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        parsed = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        request = Request(
            self.command,
            url.path,
            parse_qs(url.query),
            {k.lower(): v for k, v in self.headers.items()},
            body,
            parsed,
            client=(str(self.client_address[0]), int(self.client_address[1])),
        )
        self.double._record(request)
        return request

    def _start(self, status: int, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "X-Generation-Id,X-Provider-Name,cf-ray")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        self._start(status, "application/json", headers)
        self._chunk(json.dumps(body).encode())
        self._end()

    def _error(self, status: int, message: str, **metadata: Any) -> None:
        self._json(status, Error(status, message, metadata or None).envelope())

    def _wait(self, seconds: float, unit: bytes) -> None:
        """Sleep ``seconds`` while writing keep-alive ``unit`` bytes; always writes at least one."""
        deadline = time.monotonic() + seconds
        self._chunk(unit)
        interval = max(0.005, self.double.keepalive_interval)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(interval, left))
            if deadline - time.monotonic() > 0:
                self._chunk(unit)

    # ------------------------------------------------------------------------------------------ routes
    def do_GET(self) -> None:
        request = self._read()
        if request.path.startswith(BATCH_PREFIX):
            self.double.batches.handle(self, request)
            return
        path = request.path.removeprefix(PREFIX)
        with self.double._lock:
            queued = self.double._get_queues.get(path)
            scripted = queued.popleft() if queued else None
        if isinstance(scripted, Raw):
            self._raw(scripted)
        elif scripted is not None:
            self._send_error(scripted, stream=False)
        elif path == "/models":
            models = self.double.models
            self._json(
                200,
                {"data": models, "total_count": len(models), "links": {"next": None}},
                {"Cache-Control": "public, max-age=300"},
            )
        elif path.startswith("/models/") and path.endswith("/endpoints") and path.count("/") >= 4:
            found = self.double.endpoints_of(path[len("/models/") : -len("/endpoints")])
            if found is None:
                self._error(404, "Resource not found")
            else:
                self._json(200, found)
        elif path in ("/key", "/auth/key", "/credits", "/generation"):
            if self._authorized(request):
                self._account(path, request)
        else:
            self._error(404, f"Not Found: {request.path}")

    def do_DELETE(self) -> None:
        request = self._read()
        if request.path.startswith(BATCH_PREFIX):
            self.double.batches.handle(self, request)
        else:
            self._error(404, f"Not Found: {request.path}")

    def do_POST(self) -> None:
        request = self._read()
        if request.path.startswith(BATCH_PREFIX):
            self.double.batches.handle(self, request)
            return
        path = request.path.removeprefix(PREFIX)
        if path == "/embeddings":
            self._embeddings(request)
            return
        if path != "/chat/completions":
            self._error(404, f"Not Found: {request.path}")
            return
        if not self._authorized(request):
            return
        body = request.json
        if not isinstance(body, dict):
            self._error(400, "Invalid JSON body")
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, 'Input required: specify "messages" (a non-empty array)')
            return
        model = body.get("model")
        reply = self.double._next(model if isinstance(model, str) else None, body)
        if isinstance(reply, Raw):
            self._raw(reply)
        elif isinstance(reply, Error):
            self._send_error(reply, stream=bool(body.get("stream")))
        elif body.get("stream"):
            self._stream(self.double.render(body, reply), reply)
        else:
            self._complete(self.double.render(body, reply), reply)

    def _embeddings(self, request: Request) -> None:
        from ._embeddings import check_input, embeddings_body

        if not self._authorized(request):
            return
        with self.double._lock:
            queued = self.double._embedding_queue
            scripted = queued.popleft() if queued else None
        if isinstance(scripted, Raw):
            self._raw(scripted)
        elif isinstance(scripted, Error):
            self._send_error(scripted, stream=False)
        elif scripted is not None:
            self._json(200, scripted)
        elif (problem := check_input(request.json)) is not None:
            self._error(400, problem)
        else:
            self._json(200, embeddings_body(request.json, self.double.prices[0]))

    def _authorized(self, request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth and not self.double.require_auth:
            return True
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            self._error(401, "No auth credentials found")
            return False
        key = self.double._key
        if key is not None and auth[7:] != key:
            self._error(401, "User not found.")
            return False
        return True

    def _delay(self, reply: Text | Error | Raw) -> float:
        return self.double.latency if reply.delay is None else reply.delay

    def _raw(self, reply: Raw) -> None:
        time.sleep(self._delay(reply))
        self._start(reply.status, reply.content_type)
        self._chunk(reply.body)
        self._end()

    def _send_error(self, reply: Error, *, stream: bool) -> None:
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["Retry-After"] = f"{reply.retry_after:g}"
        if not reply.in_body:
            time.sleep(self._delay(reply))
            self._json(reply.status, reply.envelope(), headers)
            return
        if stream:  # the documented mid-stream error chunk, after the status already went out as 200
            self._start(200, "text/event-stream", {"Cache-Control": "no-cache", **headers})
            self._wait(self._delay(reply), SSE_COMMENT)
            chunk = {
                "id": generation_id(),
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "",
                "provider": "OpenAI",
                "error": reply.envelope()["error"],
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            }
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
        else:
            self._start(200, "application/json", headers)
            self._wait(self._delay(reply), KEEPALIVE)
            self._chunk(json.dumps(reply.envelope()).encode())
        self._end()

    def _complete(self, rendered: Rendered, reply: Text) -> None:
        self._start(200, "application/json", {"X-Generation-Id": rendered.id})
        self._wait(self._delay(reply), KEEPALIVE)
        body = json.dumps(rendered.completion()).encode()
        if reply.drop_after is not None:
            self._chunk(body[: len(body) // 2])
            self._drop()
        self._chunk(body)
        self._end()

    def _drop(self) -> None:
        """Hang up without finishing the response."""
        import socket

        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
        raise ConnectionResetError("dropped on purpose by the scripted reply")

    def _stream(self, rendered: Rendered, reply: Text) -> None:
        self._start(200, "text/event-stream", {"Cache-Control": "no-cache", "X-Generation-Id": rendered.id})
        self._wait(self._delay(reply), SSE_COMMENT)
        for i, chunk in enumerate(rendered.chunks(self.double.usage_style)):
            if reply.drop_after is not None and i >= reply.drop_after:
                self._drop()
            if reply.chunk_delay and i:
                time.sleep(reply.chunk_delay)
            self._chunk(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if i == 0:
                self._chunk(SSE_COMMENT)
        self._chunk(b"data: [DONE]\n\n")
        self._end()

    def _account(self, path: str, request: Request) -> None:
        if path == "/credits":
            self._json(200, {"data": {"total_credits": 100.0, "total_usage": self._spent()}})
        elif path == "/generation":
            gen_id = (request.query.get("id") or [""])[0]
            record = self.double.generations.get(gen_id)
            if record is None:
                self._error(404, f"Generation {gen_id} not found")
            else:
                self._json(200, {"data": record})
        else:
            spent = self._spent()
            self._json(
                200,
                {
                    "data": {
                        "label": "sk-or-v1-000...000",
                        "limit": None,
                        "limit_remaining": None,
                        "limit_reset": None,
                        "usage": spent,
                        "usage_daily": spent,
                        "is_free_tier": False,
                    }
                },
            )

    def _spent(self) -> float:
        return round(sum(g.get("total_cost") or 0 for g in list(self.double.generations.values())), 12)


__all__ = ["Error", "OpenRouterDouble", "Raw", "Request", "Text", "ToolCall"]
