"""Retries: the one policy (which failure, how many attempts, how long to wait) and the loops that apply it.

Every kind of request (a whole answer, a stream, sync or async, the model catalog) makes at most
``max_retries + 1`` attempts, decided by `RetryPolicy` and applied by exactly one loop of this module; drivers and
wrappers add no loop of their own. Every retry is logged the same way (`_note`).

Retried: connection errors and timeouts; statuses 408, 429, 500, 502, 503, 504, 524, 529 (also when they arrive
inside an HTTP 200 body); and OpenRouter's transient 402 (``metadata.reason == "in_flight_budget_exhausted"``: too
many paid requests in flight), which it asks to retry after ``Retry-After``. Never retried: 400, 401, any other
402 (out of credits), 403, 404 and the like, which would fail again.

The wait doubles from 0.5 s (with jitter, at most 8 s), unless the server said how long (``Retry-After``, in seconds
or as an HTTP date). A server asking for longer than ``max_retry_wait`` (60 s by default) gets no sleep: the call
raises `RateLimitError` with ``.retry_after`` at once, for the caller to decide.

A stream is retried only while nothing has been handed to the caller: after its first piece of text, a failure
raises (with ``.partial_text``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import APIConnectionError, APIStatusError, RateLimitError

T = TypeVar("T")
log = logging.getLogger("irouter")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
TRANSIENT_402 = "in_flight_budget_exhausted"
"""OpenRouter's ``metadata.reason`` of a 402 that means "too many paid requests in flight: wait and retry"."""
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_RETRY_WAIT = 60.0
BASE_DELAY, MAX_DELAY = 0.5, 8.0


def retryable(exc: BaseException) -> bool:
    """Whether another attempt may succeed where ``exc`` failed."""
    if isinstance(exc, APIConnectionError):
        return True
    if not isinstance(exc, APIStatusError):
        return False
    code = exc.code if exc.status < 400 else exc.status
    try:
        number = int(code)
    except (TypeError, ValueError):
        return False
    return number in RETRY_STATUSES or (number == 402 and exc.metadata.get("reason") == TRANSIENT_402)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try again, and how long a server may ask us to wait. Pure: it decides, never sleeps.

    Args:
        max_retries: attempts after the first (a request makes at most ``max_retries + 1``).
        max_retry_wait: the longest ``Retry-After`` (seconds) worth sleeping for; a longer one raises
            `RateLimitError` with ``.retry_after`` instead.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    observe: Callable[[Exception, float], None] | None = field(default=None, compare=False)
    """Told of each retry decided (the failure, the wait in seconds); it decides nothing (a grid's rate limiter
    listens here)."""

    def wait(self, attempt: int, exc: Exception) -> float:
        """Seconds to wait after attempt number ``attempt`` (0 for the first) failed with ``exc``.

        Raises the exception the caller gets instead when there is no further attempt: ``exc`` itself (not
        retryable, or the retries are used up), or `RateLimitError` when the server asks for a longer wait than
        ``max_retry_wait``."""
        if attempt >= self.max_retries or not retryable(exc):
            raise exc
        after = getattr(exc, "retry_after", None)
        if isinstance(after, (int, float)):
            if after > self.max_retry_wait:
                raise too_long(exc, float(after), self.max_retry_wait) from exc
            return float(after)
        backoff: float = BASE_DELAY * 2.0**attempt
        return min(MAX_DELAY, backoff) * random.uniform(0.5, 1.0)


def too_long(exc: Exception, after: float, limit: float) -> RateLimitError:
    """The `RateLimitError` raised when the server asks for a wait longer than ``max_retry_wait``."""
    if isinstance(exc, RateLimitError):
        return exc
    status = getattr(exc, "status", 429)
    return RateLimitError(
        f"The server asks to retry after {after:g} s, longer than max_retry_wait={limit:g} s: {exc}. "
        "Try again later, or raise max_retry_wait to let irouter wait.",
        status=status,
        code=getattr(exc, "code", status),
        metadata=getattr(exc, "metadata", None),
        model=getattr(exc, "model", None),
        generation_id=getattr(exc, "generation_id", None),
        retry_after=after,
        body=getattr(exc, "body", None),
    )


def retry_after_seconds(value: Any, now: float | None = None) -> float | None:
    """A ``Retry-After`` value in seconds: a number of seconds, or an HTTP date (``Wed, 21 Oct 2026 07:28:00
    GMT``) counted from ``now`` (Unix time; the clock by default). ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_retries(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"max_retries must be a whole number of at least 0, got {value!r}")
    return value


def check_retry_wait(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"max_retry_wait must be a number of seconds of at least 0, got {value!r}")
    return float(value)


def _note(attempt: int, policy: RetryPolicy, exc: BaseException, wait: float) -> None:
    log.warning("irouter: %s; retry %d of %d in %.2f s", exc, attempt + 1, policy.max_retries, wait)


def _next_wait(attempt: int, policy: RetryPolicy, exc: Exception) -> float:
    wait = policy.wait(attempt, exc)  # raises when there is no further attempt
    _note(attempt, policy, exc, wait)
    if policy.observe is not None:
        policy.observe(exc, wait)
    return wait


def call(fn: Callable[[], T], policy: RetryPolicy, sleep: Callable[[float], Any] = time.sleep) -> T:
    """``fn()``, tried again while the policy allows. ``sleep`` returning ``True`` (``threading.Event.wait``:
    the call was cancelled meanwhile) stops with ``Cancelled``."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            wait = _next_wait(attempt, policy, exc)
        _pause(sleep, wait)
        attempt += 1


async def acall(fn: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """`call`, awaited."""
    import asyncio

    attempt = 0
    while True:
        try:
            return await fn()
        except Exception as exc:
            wait = _next_wait(attempt, policy, exc)
        await asyncio.sleep(wait)
        attempt += 1


def stream(attempt: Callable[[], Iterator[T]], policy: RetryPolicy, sleep: Callable[[float], Any]) -> Iterator[T]:
    """The items of ``attempt()``, started again after a failure that came before its first item (nothing had been
    handed out), while the policy allows. ``sleep`` as for `call`."""
    tried = 0
    while True:
        items = attempt()
        try:
            first = next(items)
        except StopIteration:
            return
        except Exception as exc:
            wait = _next_wait(tried, policy, exc)
            _pause(sleep, wait)
            tried += 1
            continue
        yield first
        yield from items
        return


async def astream(attempt: Callable[[], AsyncGenerator[T, None]], policy: RetryPolicy) -> AsyncGenerator[T, None]:
    """`stream`, as an async generator."""
    import asyncio

    tried = 0
    while True:
        items = attempt()
        try:
            first = await items.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:
            wait = _next_wait(tried, policy, exc)
            await asyncio.sleep(wait)
            tried += 1
            continue
        try:
            yield first
            async for item in items:
                yield item
        finally:
            await items.aclose()
        return


def _pause(sleep: Callable[[float], Any], wait: float) -> None:
    if sleep(wait) is True:  # ``threading.Event.wait``: the call was cancelled meanwhile
        from ._streams import Cancelled

        raise Cancelled
