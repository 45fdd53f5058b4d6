"""Fallbacks (``fallbacks=[...]``, ``fallback_on=``): when one model's turn fails, the next model takes it.

A layer above retries: each model's requests are retried by the one policy (`_retry`); only when that policy gives
up (or the turn fails in a way no retry helps, such as a context window too small) does the turn go to the next
model, from the start. A ``fallback_on(answer)`` predicate returning true also passes the turn on (the answer is
not kept; its requests stay in the ledger). Every attempt is one model's whole turn, with the call's budget and
cancel signal: nothing here sends, sleeps or counts on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._drivers import Recorder
from ._engine import TurnResult
from ._wire import WRITER
from .errors import (
    APIConnectionError,
    APIResponseError,
    ContextWindowError,
    NotFoundError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StructuredOutputError,
)

log = logging.getLogger("irouter")
Spoke = Callable[[], bool] | None

FALLS_BACK = (
    ServerError,
    APIConnectionError,
    RequestTimeoutError,
    RateLimitError,
    NotFoundError,
    ContextWindowError,
    APIResponseError,
    StructuredOutputError,
)
"""Failures that pass the turn to the next model (after the retry policy gave up): 5xx, timeouts and dropped
connections, 408, 429, 404 (no endpoint serves the model), a context window too small, an unreadable answer, an
answer that does not fit ``response_format``. Anything else (a bad request, a key or credit problem, a budget, a
cancelled call) is raised at once: another model would fail the same way."""


@dataclass(frozen=True)
class Fallbacks:
    """A call's fallbacks: the models to try next, in order, and the predicate that rejects an answer."""

    models: tuple[str, ...] = ()
    reject: Callable[[Any], bool] | None = None

    def chain(self, model: str) -> list[str]:
        """``model``, then the fallbacks (each once, ``model`` not again)."""
        return list(dict.fromkeys([model, *self.models]))

    @property
    def active(self) -> bool:
        return bool(self.models)


def check_fallbacks(value: Any) -> tuple[str, ...]:
    from ._client import check_models

    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"fallbacks must be a model slug or a list of slugs, got {value!r}")
    return tuple(check_models(list(value))) if value else ()


def check_reject(value: Any) -> Callable[[Any], bool] | None:
    from ._client import is_async_callable

    if value is not None and (not callable(value) or is_async_callable(value)):
        raise TypeError("fallback_on must be a plain function of the answer returning True to try the next model")
    return value  # type: ignore[no-any-return]


def signed(result: TurnResult, slug: str) -> TurnResult:
    """The turn's assistant messages say which model wrote them (`WRITER`), when fallbacks were in play."""
    for message in result.messages:
        if message.get("role") == "assistant":
            message[WRITER] = slug
    return result


def _passes_on(exc: Exception, slug: str, last: bool, errors: dict[str, Exception], spoke: Spoke) -> None:
    """Raise ``exc`` unless the next model should try (noting the failure in ``errors``)."""
    errors[slug] = exc
    if last or not isinstance(exc, FALLS_BACK) or (spoke is not None and spoke()):
        exc.attempts = dict(errors)  # type: ignore[attr-defined]
        raise exc
    log.warning("irouter: %s failed (%s); the turn goes to the next model", slug, exc)


def _rejected(fallbacks: Fallbacks, result: TurnResult, slug: str, last: bool) -> bool:
    if last or fallbacks.reject is None or not fallbacks.reject(result.value):
        return False
    log.warning("irouter: fallback_on rejected the answer of %s; the turn goes to the next model", slug)
    return True


def _tried(attempt: Callable[[str, Recorder], TurnResult], slug: str, accounts: Recorder) -> TurnResult:
    """``attempt(slug, accounts)``; an answer that does not fit ``response_format`` leaves the response cache."""
    try:
        return attempt(slug, accounts)
    except StructuredOutputError:
        accounts.unstore()
        raise


async def _atried(
    attempt: Callable[[str, Recorder], Awaitable[TurnResult]], slug: str, accounts: Recorder
) -> TurnResult:
    """`_tried`, awaited."""
    try:
        return await attempt(slug, accounts)
    except StructuredOutputError:
        accounts.unstore()
        raise


def run(
    model: str,
    fallbacks: Fallbacks,
    recorder: Recorder,
    attempt: Callable[[str, Recorder], TurnResult],
    spoke: Spoke = None,
) -> TurnResult:
    """``attempt(slug, recorder)`` for ``model``, then each fallback while the turn fails or is rejected. The
    fallbacks' requests are accounted under their own slugs, for ``model`` (`Recorder.fallback_for`). ``spoke()``
    true (a stream already handed out text) raises a failure instead of passing the turn on."""
    if not fallbacks.active:
        return _tried(attempt, model, recorder)
    chain, errors = fallbacks.chain(model), dict[str, Exception]()
    for i, slug in enumerate(chain):
        last = i == len(chain) - 1
        accounts = recorder.instead(slug)
        try:
            result = _tried(attempt, slug, accounts)
        except Exception as exc:
            _passes_on(exc, slug, last, errors, spoke)
            accounts.failed(exc)
            continue
        if not _rejected(fallbacks, result, slug, last):
            return signed(result, slug)
    raise AssertionError("unreachable: the last model's turn returns or raises")


async def arun(
    model: str,
    fallbacks: Fallbacks,
    recorder: Recorder,
    attempt: Callable[[str, Recorder], Awaitable[TurnResult]],
    spoke: Spoke = None,
) -> TurnResult:
    """`run`, awaited."""
    if not fallbacks.active:
        return await _atried(attempt, model, recorder)
    chain, errors = fallbacks.chain(model), dict[str, Exception]()
    for i, slug in enumerate(chain):
        last = i == len(chain) - 1
        accounts = recorder.instead(slug)
        try:
            result = await _atried(attempt, slug, accounts)
        except Exception as exc:
            _passes_on(exc, slug, last, errors, spoke)
            accounts.failed(exc)
            continue
        if not _rejected(fallbacks, result, slug, last):
            return signed(result, slug)
    raise AssertionError("unreachable: the last model's turn returns or raises")
