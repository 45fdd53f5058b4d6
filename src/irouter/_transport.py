"""The only place that does HTTP: endpoints, the shared connection pool, status -> exception mapping.

``httpx2`` (pydantic's maintained continuation of httpx) is imported on first use, so ``import irouter`` stays
light. Pooled ``httpx2.Client`` objects serve the whole process (they are thread-safe); creating one costs
milliseconds (TLS context), so none is made per call. A user's own client (``http_client=``) replaces them for
the objects given it, and is never closed here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._wire import END, SSEDecoder, completion_as_chunk, encode_body, error_from_body, iter_pieces, loads
from .errors import APIConnectionError, APIResponseError, APITimeoutError, MissingAPIKeyError

if TYPE_CHECKING:
    import asyncio

    import httpx2

log = logging.getLogger("irouter")
log.addHandler(logging.NullHandler())  # a library stays quiet unless the application configures logging

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_TIMEOUT = 600.0
"""Seconds a request may take (long: big models can think for minutes). Connecting is capped at 10 s."""
ATTRIBUTION_HEADERS = {
    # OpenRouter credits apps in its rankings by these; override them with extra_headers={...}.
    "HTTP-Referer": "https://github.com/CarloLepelaars/irouter",
    "X-Title": "irouter",
}

USER_AGENT = "irouter/1.0.0.dev0"

_client_lock = threading.Lock()
_async_clients: dict[asyncio.AbstractEventLoop, tuple[list[httpx2.AsyncClient], list[int]]] = {}
"""Pools per event loop. The clients refer to their loop, so a weak mapping would never let go: closed loops are
dropped by hand (`forget_closed_loops`)."""


POOL_SHARDS = 8
"""Connection pools per process (per event loop for async). httpcore's pool matched every waiting request against
every connection, O(n^2) with n requests in flight (encode/httpcore#1035); spreading requests over several pools
kept that small. httpx2 fixed the scan, yet the spread still pays there: 1,000 async requests at concurrency 64
ran +8 % to +82 % faster with 8 pools than with one, at ~25 % less CPU per request (bench/README.md, *One pool or
eight*). Each request takes the least busy pool, the first one on a tie, so one-at-a-time traffic (a chat) keeps
reusing the same warm connection."""
_sync_clients: tuple[list[httpx2.Client], list[int]] | None = None
"""The process's pools and how many requests each has in flight; ``None`` until the first request (and again
after `release_pools` closed them)."""
_tls: Any = None


def _settings() -> dict[str, Any]:
    """What every pooled client is made with; one TLS context for all (making one costs milliseconds)."""
    import httpx2

    global _tls
    if _tls is None:
        _tls = httpx2.create_ssl_context()
    return {
        "limits": httpx2.Limits(max_connections=256, max_keepalive_connections=64),
        "timeout": httpx2.Timeout(DEFAULT_TIMEOUT, connect=10.0),
        "follow_redirects": False,
        "verify": _tls,
    }


def _clients() -> tuple[list[httpx2.Client], list[int]]:
    """The sync pools (made on first use); call with ``_client_lock`` held."""
    global _sync_clients
    if _sync_clients is None:
        import httpx2

        _sync_clients = ([httpx2.Client(**_settings()) for _ in range(POOL_SHARDS)], [0] * POOL_SHARDS)
    return _sync_clients


def _least_busy(busy: list[int]) -> int:
    return min(range(len(busy)), key=lambda k: (busy[k], k))


def http_client() -> httpx2.Client:
    """The first pooled client (for one-off requests: catalog, downloads)."""
    with _client_lock:
        return _clients()[0][0]


@contextlib.contextmanager
def leased_client() -> Iterator[httpx2.Client]:
    """The least busy pooled client, for the duration of one request."""
    with _client_lock:
        clients, busy = _clients()
        index = _least_busy(busy)
        busy[index] += 1
    try:
        yield clients[index]
    finally:
        with _client_lock:
            busy[index] -= 1
            last = busy[index] == 0 and (_sync_clients is None or _sync_clients[0] is not clients)
        if last:  # released by `release_pools` while this request was in flight: closed now that it is done
            clients[index].close()


@contextlib.asynccontextmanager
async def leased_async_client() -> AsyncIterator[httpx2.AsyncClient]:
    """The least busy pooled async client of the running event loop, for one request (an ``httpx2.AsyncClient``
    belongs to one loop)."""
    import asyncio

    import httpx2

    loop = asyncio.get_running_loop()
    pools = _async_clients.get(loop)
    if pools is None:
        forget_closed_loops(_async_clients)
        pools = ([httpx2.AsyncClient(**_settings()) for _ in range(POOL_SHARDS)], [0] * POOL_SHARDS)
        _async_clients[loop] = pools
    clients, busy = pools
    index = _least_busy(busy)  # one loop, one thread: no lock needed
    busy[index] += 1
    try:
        yield clients[index]
    finally:
        busy[index] -= 1
        if busy[index] == 0 and _async_clients.get(loop) is not pools:  # released meanwhile (`arelease_pools`)
            await clients[index].aclose()


def release_pools() -> None:
    """Close the connections of the shared sync pools (new ones open on the next request); a connection busy with
    a request in flight (one abandoned after Ctrl-C, say) is closed when that request ends. Drop the async pools of
    event loops that have closed."""
    global _sync_clients
    with _client_lock:
        old, _sync_clients = _sync_clients, None
        idle = [client for client, n in zip(*old, strict=True) if n == 0] if old is not None else []
    for client in idle:
        client.close()
    forget_closed_loops(_async_clients)


async def arelease_pools() -> None:
    """`release_pools`, and the running loop's async pools too (closed on that loop; one busy with a request in
    flight is closed when that request ends)."""
    import asyncio

    release_pools()
    pools = _async_clients.pop(asyncio.get_running_loop(), None)
    for client, n in zip(*pools, strict=True) if pools is not None else []:
        if n == 0:
            await client.aclose()


def forget_closed_loops(per_loop: dict[Any, Any]) -> None:
    """Drop the entries of event loops that have closed (each ``asyncio.run`` makes a new loop)."""
    for loop in [loop for loop in per_loop if loop.is_closed()]:
        per_loop.pop(loop, None)


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``OPENROUTER_BASE_URL``, else OpenRouter's; without a trailing slash."""
    url = base_url or os.environ.get("OPENROUTER_BASE_URL") or OPENROUTER_BASE_URL
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL such as {OPENROUTER_BASE_URL!r}, got {url!r}")
    return url.rstrip("/")


def is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def _clean_key(key: Any) -> str | None:
    """A key as given: a non-blank string, or ``None``."""
    if key is not None and not isinstance(key, str):
        raise TypeError(f"api_key must be a string, got {type(key).__name__}")
    return (key or "").strip() or None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    from ._retry import retry_after_seconds

    return retry_after_seconds(headers.get("retry-after"))


class Endpoint:
    """A base URL and the key for it. The key is kept private: it appears in no repr, log or error.

    Args:
        base_url: where requests go (default: ``OPENROUTER_BASE_URL``, else OpenRouter).
        api_key: the key; by default read from the environment variable ``api_key_env``.
        api_key_env: the variable holding the key (``OPENROUTER_API_KEY``, read only for OpenRouter itself or the
            ``OPENROUTER_BASE_URL`` the user chose); ``None`` for none.
        headers: headers sent with every request.
        attribution: send OpenRouter's app-attribution headers (``HTTP-Referer``, ``X-Title``); by default only
            to OpenRouter (or ``OPENROUTER_BASE_URL``): other hosts get nothing they did not ask for.
        require_key: raise `MissingAPIKeyError` for OpenRouter without a key (``False`` for ``GET /models``).
        client: the user's ``httpx2.Client`` or ``httpx2.AsyncClient`` to send through, instead of irouter's shared
            pools (never closed by irouter).

    Pickling leaves the key out: the unpickled endpoint reads it again from the environment variable it would read
    when made anew (``api_key_env`` as trusted above), and if that is empty while the original had a key, its first
    request raises `MissingAPIKeyError` saying how to give it (`set_key`). ``copy.deepcopy`` keeps the key. The
    user's client is not pickled either (the owner refuses; see ``ModelClient.__getstate__``).
    """

    __slots__ = ("__api_key", "_key_env", "_key_lost", "attribution", "base_url", "client", "extra_headers")

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        api_key_env: str | None = "OPENROUTER_API_KEY",
        headers: Mapping[str, str] | None = None,
        attribution: bool | None = None,
        require_key: bool = True,
        client: Any = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        # OpenRouter's key and attribution headers go to OpenRouter only: its own host, or the URL the user set in
        # OPENROUTER_BASE_URL (a proxy, a test double). An explicit base_url elsewhere gets an explicit api_key or none.
        trusted = is_openrouter(self.base_url) or (base_url is None and bool(os.environ.get("OPENROUTER_BASE_URL")))
        if api_key_env == "OPENROUTER_API_KEY" and not trusted:
            api_key_env = None
        key = _clean_key(api_key if api_key is not None else (os.environ.get(api_key_env) if api_key_env else None))
        if key is None and require_key and is_openrouter(self.base_url):
            raise MissingAPIKeyError()
        self.__api_key = key
        self._key_env = api_key_env
        self._key_lost = False
        self.extra_headers = dict(headers or {})
        self.attribution = trusted if attribution is None else attribution
        self.client = client

    def __repr__(self) -> str:
        return f"Endpoint(base_url={self.base_url!r}, api_key={'set' if self.__api_key else 'not set'})"

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle holds: never the key (nor the user's client), only where to read the key again."""
        state = {name: getattr(self, name) for name in ("base_url", "extra_headers", "attribution", "_key_env")}
        return {**state, "had_key": self.__api_key is not None or self._key_lost}

    def __setstate__(self, state: dict[str, Any]) -> None:
        had_key = state.pop("had_key")
        for name, value in state.items():
            setattr(self, name, value)
        self.client = None
        key = os.environ.get(self._key_env) if self._key_env else None
        self.__api_key = _clean_key(key)
        self._key_lost = had_key and self.__api_key is None

    def __deepcopy__(self, memo: dict[int, Any]) -> Endpoint:
        """A copy with the key (it stays in this process) and the same client."""
        twin = copy.copy(self)  # __copy__ below
        twin.extra_headers = dict(self.extra_headers)
        return twin

    def __copy__(self) -> Endpoint:
        twin = Endpoint.__new__(Endpoint)
        for name in ("base_url", "extra_headers", "attribution", "_key_env", "_key_lost", "client"):
            setattr(twin, name, getattr(self, name))
        twin.__api_key = self.__api_key
        return twin

    @property
    def has_key(self) -> bool:
        return self.__api_key is not None

    def check_key(self, how: str = "give the key again with chat.api_key = '...' (or call.api_key = '...').") -> None:
        """Raise `MissingAPIKeyError` if this endpoint was unpickled without the key it had; ``how`` says what to do
        besides setting the environment variable."""
        if self._key_lost:
            where = f"set the {self._key_env} environment variable in this process, or " if self._key_env else ""
            raise MissingAPIKeyError(f"This chat or call was unpickled, and API keys are never pickled: {where}{how}")

    def set_key(self, api_key: str | None) -> None:
        """Use ``api_key`` from now on (``None``: none)."""
        self.__api_key = _clean_key(api_key)
        self._key_lost = False

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": USER_AGENT}
        if self.attribution:
            headers.update(ATTRIBUTION_HEADERS)
        headers.update(self.extra_headers)
        self.check_key()
        if self.__api_key:
            headers["Authorization"] = f"Bearer {self.__api_key}"
        if extra:
            headers.update(extra)
        return headers

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """POST ``body`` as JSON and return the parsed JSON answer; HTTP errors raise irouter's exceptions."""
        request = self._prepare("POST", path, body, extra_headers, timeout, model)
        return request.read_sync()

    def get(self, path: str, *, params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """GET ``path`` and return the parsed JSON answer."""
        request = self._prepare("GET", path, None, None, timeout, None)
        request.kwargs["params"] = params
        return request.read_sync()

    def request(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Any route: ``content`` sent exactly as given (JSON bytes the caller wrote: their field order stays),
        the JSON answer parsed; HTTP errors raise irouter's exceptions."""
        return self._raw(method, path, content, params, timeout).read_sync()

    async def arequest(
        self,
        method: str,
        path: str,
        content: bytes | None = None,
        *,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """`request`, awaited (with the call's ``extra_headers``, as its other requests)."""
        return await self._raw(method, path, content, params, timeout, extra_headers).read_async()

    def _raw(
        self,
        method: str,
        path: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        timeout: float | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> _Request:
        request = self._prepare(method, path, None, extra_headers, timeout, None)
        if content is not None:
            request.kwargs["content"] = content
        if params:
            request.kwargs["params"] = dict(params)
        return request

    def stream(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[dict[str, Any]]:
        """POST ``body`` and yield the server-sent chunks as dicts. Closing the generator closes the connection;
        so does setting ``cancel`` (checked at every line, keep-alive comments included)."""
        return self._prepare("POST", path, body, extra_headers, timeout, model).chunks_sync(cancel)

    async def apost(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """`post`, awaited."""
        return await self._prepare("POST", path, body, extra_headers, timeout, model).read_async()

    def astream(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        model: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """`stream`, as an async generator."""
        return self._prepare("POST", path, body, extra_headers, timeout, model).chunks_async()

    def _prepare(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        extra_headers: Mapping[str, str] | None,
        timeout: float | None,
        model: str | None,
    ) -> _Request:
        headers = self.headers(extra_headers)
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            encoded = encode_body(body)
            if isinstance(encoded, bytes):
                kwargs["content"] = encoded
            else:
                headers["Content-Length"] = str(sum(len(p) for p in encoded))
                kwargs["pieces"] = encoded
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        request = _Request(method, f"{self.base_url}/{path.lstrip('/')}", kwargs, limit, model, self.base_url)
        request.client = self.client
        return request


class _Request:
    """One prepared request and the ways to send it (sync or async, whole answer or SSE chunks).

    Every way enforces ``limit`` seconds for the whole exchange, not per read: OpenRouter keeps slow requests alive
    with whitespace or SSE comments, which would reset a per-read timeout forever.
    """

    def __init__(
        self, method: str, url: str, kwargs: dict[str, Any], limit: float, model: str | None, base_url: str
    ) -> None:
        self.method, self.url, self.kwargs, self.limit, self.model = method, url, kwargs, limit, model
        self.base_url = base_url
        self.deadline = 0.0
        self.client: Any = None
        """The user's client to send through; ``None``: irouter's shared pools."""

    def _lease(self) -> contextlib.AbstractContextManager[httpx2.Client]:
        return contextlib.nullcontext(self.client) if self.client is not None else leased_client()

    def _alease(self) -> contextlib.AbstractAsyncContextManager[httpx2.AsyncClient]:
        return contextlib.nullcontext(self.client) if self.client is not None else leased_async_client()

    def _kwargs(self, asynchronous: bool) -> dict[str, Any]:
        import httpx2

        kwargs = dict(self.kwargs)
        pieces = kwargs.pop("pieces", None)
        if pieces is not None:
            kwargs["content"] = _aiter(iter_pieces(pieces)) if asynchronous else iter_pieces(pieces)
        kwargs["timeout"] = httpx2.Timeout(self.limit, connect=min(10.0, self.limit))
        self.deadline = time.monotonic() + self.limit
        log.debug("%s %s model=%s", self.method, self.url, self.model)
        return kwargs

    def _check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise APITimeoutError(f"No complete answer within {self.limit:g} s", model=self.model)

    def _translate(self, exc: Exception) -> Exception:
        import httpx2

        if isinstance(exc, httpx2.TimeoutException):
            return APITimeoutError(
                f"Request timed out after {self.limit:g} s ({exc or type(exc).__name__})", model=self.model
            )
        return APIConnectionError(
            f"Connection to {self.base_url} failed: {exc or type(exc).__name__}", model=self.model
        )

    def _error(self, status: int, content: bytes, headers: Mapping[str, str]) -> Exception:
        text = content.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = None
        return error_from_body(
            status, parsed, model=self.model, retry_after=_retry_after(headers), text=text, headers=headers
        )

    def _chunk(self, payload: str) -> dict[str, Any]:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise APIResponseError(
                f"A stream event is not JSON: {payload[:200]!r}", model=self.model, body=payload
            ) from None
        if not isinstance(chunk, dict):
            raise APIResponseError(f"A stream event is not an object: {payload[:200]!r}", model=self.model)
        return chunk

    def _events(self, decoder: SSEDecoder, line: str | None) -> list[dict[str, Any]]:
        """The chunks one SSE line completes (``None``: the stream ended, flush what is left); checks the deadline.
        Shared by the sync and async readers, which differ only in how they get lines."""
        if line is None:
            payload = decoder.flush()
        else:
            self._check_deadline()
            payload = decoder.feed(line)
        if decoder.done:
            return [{END: True}]
        return [] if payload is None else [self._chunk(payload)]

    # ------------------------------------------------------------------------------------------ sync
    def read_sync(self) -> Any:
        import httpx2

        try:
            with self._lease() as client, client.stream(self.method, self.url, **self._kwargs(False)) as response:
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    self._check_deadline()
        except httpx2.TransportError as exc:
            raise self._translate(exc) from exc
        content = b"".join(chunks)
        if response.status_code >= 400:
            raise self._error(response.status_code, content, response.headers)
        return loads(content, model=self.model)

    def chunks_sync(self, cancel: threading.Event | None = None) -> Iterator[dict[str, Any]]:
        import httpx2

        try:
            with self._lease() as client, client.stream(self.method, self.url, **self._kwargs(False)) as response:
                if response.status_code >= 400:
                    raise self._error(response.status_code, response.read(), response.headers)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    yield completion_as_chunk(loads(response.read(), model=self.model), self.model)
                    return
                decoder = SSEDecoder()
                for line in response.iter_lines():
                    if cancel is not None and cancel.is_set():
                        return
                    yield from self._events(decoder, line)
                    if decoder.done:
                        return
                yield from self._events(decoder, None)
        except httpx2.TransportError as exc:
            raise self._translate(exc) from exc

    # ------------------------------------------------------------------------------------------ async
    async def read_async(self) -> Any:
        import httpx2

        try:
            async with (
                self._alease() as client,
                client.stream(self.method, self.url, **self._kwargs(True)) as response,
            ):
                chunks = []
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
                    self._check_deadline()
        except httpx2.TransportError as exc:
            raise self._translate(exc) from exc
        content = b"".join(chunks)
        if response.status_code >= 400:
            raise self._error(response.status_code, content, response.headers)
        return loads(content, model=self.model)

    async def chunks_async(self) -> AsyncIterator[dict[str, Any]]:
        import httpx2

        try:
            async with (
                self._alease() as client,
                client.stream(self.method, self.url, **self._kwargs(True)) as response,
            ):
                if response.status_code >= 400:
                    raise self._error(response.status_code, await response.aread(), response.headers)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    yield completion_as_chunk(loads(await response.aread(), model=self.model), self.model)
                    return
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    for chunk in self._events(decoder, line):
                        yield chunk
                    if decoder.done:
                        return
                for chunk in self._events(decoder, None):
                    yield chunk
        except httpx2.TransportError as exc:
            raise self._translate(exc) from exc


async def _aiter(pieces: Iterator[bytes | memoryview]) -> AsyncIterator[bytes | memoryview]:
    for piece in pieces:
        yield piece


def download(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """Fetch ``url`` (http or https only) for an attachment, with a total time limit and a size cap.

    Sends no API key and no attribution headers: the file's host is not OpenRouter.
    """
    import httpx2

    from .errors import AttachmentError

    if urlsplit(url).scheme.lower() not in ("http", "https"):
        raise AttachmentError(f"Only http(s) URLs can be downloaded, got {url!r}")
    deadline = time.monotonic() + timeout
    try:
        with http_client().stream(
            "GET",
            url,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,
            timeout=httpx2.Timeout(timeout, connect=min(10.0, timeout)),
        ) as response:
            if response.status_code >= 400:
                raise AttachmentError(f"Downloading {url} failed: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise AttachmentError(f"{url} is {int(declared):,} bytes; the limit is {max_bytes:,}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise AttachmentError(f"{url} is larger than the limit of {max_bytes:,} bytes")
                if time.monotonic() > deadline:
                    raise AttachmentError(f"Downloading {url} took longer than {timeout:g} s")
                chunks.append(chunk)
    except httpx2.TimeoutException:
        raise AttachmentError(f"Downloading {url} took longer than {timeout:g} s") from None
    except httpx2.HTTPError as exc:
        raise AttachmentError(f"Downloading {url} failed: {exc}") from None
    return b"".join(chunks)
