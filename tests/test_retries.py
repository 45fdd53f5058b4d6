"""One retry policy for every kind of request: attempts counted by the double, transient 402s, Retry-After."""

from __future__ import annotations

import asyncio
import logging
import time
from email.utils import formatdate
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncCall, AsyncChat, Call, Chat
from irouter.catalog import list_models
from irouter.testing import Error, OpenRouterDouble, Raw, Text

from .conftest import SAMPLES

M = "openai/gpt-4o-mini"
IN_FLIGHT = {"reason": "in_flight_budget_exhausted", "limit_source": "openrouter_in_flight_budget"}

FAILURES = {
    "503": Error(503, "busy", retry_after=0),
    "429": Error(429, "slow down", retry_after=0),
    "402-in-flight": Error(402, "Too many requests in flight", metadata=IN_FLIGHT, retry_after=0),
    "502-in-body": Error(502, "Provider returned error", in_body=True),  # in a stream: an error chunk
    "dropped": Text("never whole", drop_after=0),
}


def ask(kind: str, router: OpenRouterDouble, max_retries: int) -> str:
    """One request of the given kind, through the public API."""
    connect = {"base_url": router.base_url, "api_key": router.api_key, "max_retries": max_retries}
    if kind == "chat":
        return str(Chat(M, **connect)("hi"))
    if kind == "chat-stream":
        return "".join(Chat(M, **connect)("hi", stream=True))
    if kind == "call-stream":
        return "".join(Call(M, **connect)("hi", stream=True))

    async def main() -> str:
        if kind == "async-chat":
            return str(await AsyncChat(M, **connect)("hi"))
        if kind == "async-stream":
            return "".join([p async for p in AsyncChat(M, **connect)("hi", stream=True)])
        return "".join([p async for p in AsyncCall(M, **connect)("hi", stream=True)])

    return asyncio.run(main())


KINDS = ["chat", "chat-stream", "call-stream", "async-chat", "async-stream", "async-call-stream"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(max_retries=st.integers(0, 4), failures=st.lists(st.sampled_from(sorted(FAILURES)), max_size=6))
def test_every_kind_of_request_makes_at_most_max_retries_plus_one_attempts(
    router: OpenRouterDouble, kind: str, max_retries: int, failures: list[str]
) -> None:
    """Regression: a stream failing before its first chunk was retried (max_retries+1)^2 times (9 for 2)."""
    router.reset()
    router.queue(*[FAILURES[f] for f in failures], "Finally.")
    if len(failures) <= max_retries:
        assert ask(kind, router, max_retries) == "Finally."
        assert len(router.chat_requests) == len(failures) + 1
    else:
        with pytest.raises(irouter.APIError):
            ask(kind, router, max_retries)
        assert len(router.chat_requests) == max_retries + 1


@pytest.mark.parametrize("kind", KINDS)
def test_every_retry_is_logged_the_same_way(
    router: OpenRouterDouble, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    router.queue(*[Error(503, "busy", retry_after=0)] * 9)
    with caplog.at_level(logging.WARNING, logger="irouter"), pytest.raises(irouter.ServerError):
        ask(kind, router, 4)
    assert len(router.chat_requests) == 5
    notes = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(notes) == 4
    assert [n.split("; ")[-1].split(" in ")[0] for n in notes] == [f"retry {i} of 4" for i in range(1, 5)]


def test_the_catalog_fetch_is_retried_like_any_request(router: OpenRouterDouble) -> None:
    router.queue_get("/models", Error(503, "busy", retry_after=0), Error(502, "bad gateway", retry_after=0))
    assert [m["id"] for m in list_models(router.base_url, refresh=True)][:1] == [M]
    assert len([r for r in router.requests if r.path.endswith("/models")]) == 3
    router.reset()
    router.queue_get("/models", *[Error(503, "busy", retry_after=0)] * 5)
    with pytest.raises(irouter.ServerError):
        list_models(router.base_url, refresh=True, max_retries=1)
    assert len(router.requests) == 2
    router.reset()
    router.queue_get("/models", Error(404, "nope"))
    with pytest.raises(irouter.NotFoundError):
        list_models(router.base_url, refresh=True)
    assert len(router.requests) == 1


def test_a_chat_fetching_the_catalog_uses_its_max_retries(router: OpenRouterDouble) -> None:
    router.queue_get("/models", *[Error(503, "busy", retry_after=0)] * 5)
    chat = Chat(M, base_url=router.base_url, api_key=router.api_key, check_capabilities=True, max_retries=3)
    with pytest.raises(irouter.ServerError):
        chat("hi")
    assert len(router.requests) == 4  # four tries of GET /models; the chat request was never sent


# --------------------------------------------------------------------------------------------- 402


@pytest.mark.parametrize("stream", [False, True])
def test_the_transient_402_is_retried_like_a_429(router: OpenRouterDouble, connect: dict, stream: bool) -> None:
    router.queue(Error(402, "Too many requests in flight", metadata=IN_FLIGHT, retry_after=0.05), "Paid answer.")
    chat = Chat(M, **connect)
    answer = "".join(chat("hi", stream=True)) if stream else chat("hi")
    assert answer == "Paid answer."
    assert len(router.chat_requests) == 2


def test_the_transient_402_is_a_rate_limit_error(router: OpenRouterDouble, connect: dict) -> None:
    """The captured body: its Retry-After (120 s, in metadata.headers) is longer than max_retry_wait (60 s)."""
    sample = (SAMPLES / "error-402-in-flight-budget-exhausted.response.json").read_bytes()
    router.queue(Raw(sample, status=402), "never asked for")
    started = time.monotonic()
    with pytest.raises(irouter.RateLimitError) as info:
        Chat(M, **connect)("hi")
    assert time.monotonic() - started < 30  # it did not sleep for two minutes
    assert (info.value.status, info.value.retry_after) == (402, 120)
    assert info.value.metadata["reason"] == "in_flight_budget_exhausted"
    assert len(router.chat_requests) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_402_for_credits_is_never_retried(router: OpenRouterDouble, connect: dict, stream: bool) -> None:
    router.queue(
        Error(402, "Insufficient credits. Add more using https://openrouter.ai/credits"), "should not be asked for"
    )
    chat = Chat(M, **connect)
    with pytest.raises(irouter.PaymentRequiredError) as info:
        "".join(chat("hi", stream=True)) if stream else chat("hi")
    assert not isinstance(info.value, irouter.RateLimitError)
    assert len(router.chat_requests) == 1


# --------------------------------------------------------------------------------------------- Retry-After


def test_retry_after_as_an_http_date(router: OpenRouterDouble, connect: dict) -> None:
    soon = formatdate(time.time() + 1, usegmt=True)  # whole seconds: waits up to 1 s
    router.queue(Error(503, "busy", headers={"Retry-After": soon}), "After the date.")
    assert Chat(M, **connect)("hi") == "After the date."
    assert len(router.chat_requests) == 2
    later = formatdate(time.time() + 3600, usegmt=True)
    router.queue(Error(503, "busy", headers={"Retry-After": later}), "never asked for")
    with pytest.raises(irouter.RateLimitError) as info:
        Chat(M, **connect)("hi")
    assert 3500 < (info.value.retry_after or 0) <= 3600
    assert info.value.status == 503
    assert isinstance(info.value.__cause__, irouter.ServerError)
    assert len(router.chat_requests) == 3


@pytest.mark.parametrize("stream", [False, True])
def test_a_longer_wait_than_max_retry_wait_raises(router: OpenRouterDouble, connect: dict, stream: bool) -> None:
    router.queue(Error(429, "Rate limit exceeded", retry_after=30), "never asked for")
    chat = Chat(M, max_retry_wait=5, **connect)
    started = time.monotonic()
    with pytest.raises(irouter.RateLimitError) as info:
        "".join(chat("hi", stream=True)) if stream else chat("hi")
    assert time.monotonic() - started < 20
    assert info.value.retry_after == 30
    assert len(router.chat_requests) == 1
    router.reset()
    router.queue(Error(429, "Rate limit exceeded", retry_after=0.2), "Waited.")
    assert chat("hi", max_retry_wait=1) == "Waited."  # per call, and a short wait is slept


@pytest.mark.parametrize("bad", [-1, "60", True, float("nan")])
def test_max_retry_wait_is_checked(connect: dict, bad: Any) -> None:
    with pytest.raises(ValueError, match="max_retry_wait"):
        Chat(M, max_retry_wait=bad, **connect)


def test_max_retry_wait_never_reaches_the_server(router: OpenRouterDouble, connect: dict) -> None:
    Chat(M, max_retry_wait=10, **connect)("hi")
    assert "max_retry_wait" not in router.chat_requests[-1]


# --------------------------------------------------------------------------------------------- the policy itself


@given(
    max_retries=st.integers(0, 6),
    attempt=st.integers(0, 8),
    status=st.sampled_from([400, 401, 402, 403, 404, 408, 429, 500, 502, 503, 504, 524, 529]),
    after=st.one_of(st.none(), st.floats(0, 500)),
    max_wait=st.floats(0, 120),
)
def test_the_policy_decides_attempts_and_waits(
    max_retries: int, attempt: int, status: int, after: float | None, max_wait: float
) -> None:
    from irouter._retry import RETRY_STATUSES, RetryPolicy
    from irouter.errors import status_error_class

    error = status_error_class(status)("x", status=status, retry_after=after)
    policy = RetryPolicy(max_retries, max_wait)
    if attempt >= max_retries or status not in RETRY_STATUSES:
        with pytest.raises(type(error)) as info:
            policy.wait(attempt, error)
        assert info.value is error  # the caller gets the server's own error
    elif after is not None and after > max_wait:
        with pytest.raises(irouter.RateLimitError) as limited:
            policy.wait(attempt, error)
        assert (limited.value.retry_after, limited.value.status) == (after, status)
    else:
        wait = policy.wait(attempt, error)
        assert wait == after if after is not None else 0 < wait <= 8.0


@given(seconds=st.integers(0, 10**6))
def test_retry_after_reads_seconds_and_http_dates(seconds: int) -> None:
    from irouter._retry import retry_after_seconds

    now = 1_800_000_000.0
    assert retry_after_seconds(str(seconds)) == seconds
    assert retry_after_seconds(formatdate(now + seconds, usegmt=True), now=now) == seconds
    assert retry_after_seconds(formatdate(now - 5, usegmt=True), now=now) == 0  # a date in the past: no wait
    assert retry_after_seconds("soon") is None
