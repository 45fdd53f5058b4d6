"""Retries: which failures are worth another try, how long to wait, and the loops that do it.

Retried: connection errors and timeouts, and statuses 408, 429, 500, 502, 503, 504, 524, 529 (also when they
arrive inside an HTTP 200 body). Never retried: 400, 401, 402, 403, 404 and the like, which would fail again.
The wait doubles from 0.5 s (with jitter, at most 8 s), unless the server said how long (``Retry-After``).
A stream is retried only until its first chunk arrived: after that, text has been handed out.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from .errors import APIConnectionError, APIStatusError

T = TypeVar("T")
log = logging.getLogger("irouter")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
DEFAULT_MAX_RETRIES = 2
BASE_DELAY, MAX_DELAY, MAX_RETRY_AFTER = 0.5, 8.0, 60.0


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        code = exc.code if exc.status < 400 else exc.status
        try:
            return int(code) in RETRY_STATUSES
        except (TypeError, ValueError):
            return False
    return False


def delay(attempt: int, exc: BaseException) -> float:
    """Seconds to wait before retry number ``attempt + 1``."""
    after = getattr(exc, "retry_after", None)
    if isinstance(after, (int, float)):
        return float(min(float(after), MAX_RETRY_AFTER))
    backoff: float = BASE_DELAY * 2.0**attempt
    return min(MAX_DELAY, backoff) * random.uniform(0.5, 1.0)


def _note(attempt: int, retries: int, exc: BaseException, wait: float) -> None:
    log.warning("irouter: %s; retry %d of %d in %.2f s", exc, attempt + 1, retries, wait)


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_retries must be a whole number of at least 0, got {value!r}")
    return value


def call(fn: Callable[[], T], retries: int, sleep: Callable[[float], Any] = time.sleep) -> T:
    """``fn()``, tried again up to ``retries`` times while it fails with a retryable error."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            wait = delay(attempt, exc)
            _note(attempt, retries, exc, wait)
            sleep(wait)
            attempt += 1


async def acall(fn: Callable[[], Awaitable[T]], retries: int) -> T:
    """`call`, awaited."""
    import asyncio

    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            wait = delay(attempt, exc)
            _note(attempt, retries, exc, wait)
            await asyncio.sleep(wait)
            attempt += 1


def stream(open_stream: Callable[[], Iterator[T]], retries: int, sleep: Callable[[float], Any]) -> Iterator[T]:
    """The items of ``open_stream()``, reopened after a retryable failure that came before the first item."""
    attempt = 0
    while True:
        items = open_stream()
        try:
            first = next(items)
        except StopIteration:
            return
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            wait = delay(attempt, exc)
            _note(attempt, retries, exc, wait)
            if sleep(wait) is True:  # ``threading.Event.wait`` says the stream was closed meanwhile
                from ._streams import Cancelled

                raise Cancelled from None
            attempt += 1
            continue
        yield first
        yield from items
        return


async def astream(open_stream: Callable[[], AsyncIterator[T]], retries: int) -> AsyncIterator[T]:
    """`stream`, as an async generator."""
    import asyncio

    attempt = 0
    while True:
        items = open_stream()
        try:
            first = await items.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            wait = delay(attempt, exc)
            _note(attempt, retries, exc, wait)
            await asyncio.sleep(wait)
            attempt += 1
            continue
        yield first
        async for item in items:
            yield item
        return
