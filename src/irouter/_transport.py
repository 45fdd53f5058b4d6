"""The only place that does HTTP: endpoints, the shared connection pool, status -> exception mapping.

``httpx`` is imported on first use, so ``import irouter`` stays light. One pooled ``httpx.Client`` serves the whole
process (it is thread-safe); creating one costs milliseconds (TLS context), so it is never made per call.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._wire import encode_body, error_from_body, iter_pieces, loads
from .errors import APIConnectionError, APITimeoutError, MissingAPIKeyError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("irouter")

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
_sync_client: httpx.Client | None = None


def http_client() -> httpx.Client:
    """The process-wide pooled client (created on first use)."""
    global _sync_client
    if _sync_client is None:
        with _client_lock:
            if _sync_client is None:
                import httpx

                _sync_client = httpx.Client(
                    limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
                    timeout=httpx.Timeout(DEFAULT_TIMEOUT, connect=10.0),
                    follow_redirects=False,
                )
    return _sync_client


def resolve_base_url(base_url: str | None) -> str:
    """``base_url``, else ``OPENROUTER_BASE_URL``, else OpenRouter's; without a trailing slash."""
    url = base_url or os.environ.get("OPENROUTER_BASE_URL") or OPENROUTER_BASE_URL
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"base_url must be an http(s) URL such as {OPENROUTER_BASE_URL!r}, got {url!r}")
    return url.rstrip("/")


def is_openrouter(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host == "openrouter.ai" or host.endswith(".openrouter.ai")


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class Endpoint:
    """A base URL and the key for it. The key is kept private: it appears in no repr, log or error."""

    __slots__ = ("__api_key", "base_url")

    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = resolve_base_url(base_url)
        key = api_key if api_key is not None else os.environ.get("OPENROUTER_API_KEY")
        if key is not None and not isinstance(key, str):
            raise TypeError(f"api_key must be a string, got {type(key).__name__}")
        key = (key or "").strip() or None
        if key is None and is_openrouter(self.base_url):
            raise MissingAPIKeyError()
        self.__api_key = key

    def __repr__(self) -> str:
        return f"Endpoint(base_url={self.base_url!r}, api_key={'set' if self.__api_key else 'not set'})"

    @property
    def has_key(self) -> bool:
        return self.__api_key is not None

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **ATTRIBUTION_HEADERS,
        }
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
        encoded = encode_body(body)
        headers = self.headers(extra_headers)
        if isinstance(encoded, bytes):
            return self._send("POST", path, model=model, content=encoded, headers=headers, timeout=timeout)
        headers["Content-Length"] = str(sum(len(p) for p in encoded))
        return self._send("POST", path, model=model, content=iter_pieces(encoded), headers=headers, timeout=timeout)

    def get(self, path: str, *, params: Mapping[str, str] | None = None, timeout: float | None = None) -> Any:
        """GET ``path`` and return the parsed JSON answer."""
        return self._send("GET", path, params=params, headers=self.headers(), timeout=timeout)

    def _send(
        self, method: str, path: str, *, model: str | None = None, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Send a request and read the whole answer within ``timeout`` seconds in total.

        The deadline covers the whole exchange, not each read: OpenRouter keeps a slow request alive by writing
        whitespace every few seconds, which would reset a per-read timeout forever.
        """
        import httpx

        url = f"{self.base_url}/{path.lstrip('/')}"
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        kwargs["timeout"] = httpx.Timeout(limit, connect=min(10.0, limit))
        log.debug("%s %s model=%s", method, url, model)
        try:
            with http_client().stream(method, url, **kwargs) as response:
                chunks = []
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout(f"no complete answer within {limit:g} s")
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"Request timed out after {limit:g} s ({exc or type(exc).__name__})", model=model
            ) from exc
        except httpx.TransportError as exc:
            raise APIConnectionError(f"Could not reach {self.base_url}: {exc}", model=model) from exc
        content = b"".join(chunks)
        if response.status_code >= 400:
            text = content.decode("utf-8", "replace")
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = None
            raise error_from_body(
                response.status_code, parsed, model=model, retry_after=_retry_after(response.headers), text=text
            )
        return loads(content, model=model)


def download(url: str, *, max_bytes: int, timeout: float) -> bytes:
    """Fetch ``url`` (http or https only) for an attachment, with a total time limit and a size cap.

    Sends no API key and no attribution headers: the file's host is not OpenRouter.
    """
    import httpx

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
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
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
    except httpx.TimeoutException:
        raise AttachmentError(f"Downloading {url} took longer than {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise AttachmentError(f"Downloading {url} failed: {exc}") from None
    return b"".join(chunks)
