"""The option table (`irouter._options`) walked over HTTP: every option at every place, accepted or refused.

For each of irouter's own options, passing it wherever the table accepts it must never put its name in the body
the double received; passing it anywhere else must raise before any request. Request fields go on the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irouter import AsyncCall, AsyncChat, Call, Chat
from irouter._options import (
    ANSWER,
    BY_NAME,
    CALL,
    CHAT,
    CONFLICTS,
    GRID,
    NEW_CALL,
    NEW_CHAT,
    OPTIONS,
    OWN,
    PLACES,
    check,
    split,
)
from irouter._streams import AsyncStream, Stream
from irouter.testing import OpenRouterDouble

M = "openai/gpt-4o-mini"


def weather(city: str) -> str:
    """The weather."""
    return "sunny"


def samples(router: OpenRouterDouble, flavour: str = "sync") -> dict[str, Any]:
    """A value for every one of irouter's own options (a new own option needs one here)."""
    import httpx2

    return {
        "http_client": httpx2.Client() if flavour == "sync" else httpx2.AsyncClient(),
        "extra_body": {"top_k": 3},
        "extra_headers": {"X-Title": "options test"},
        "timeout": 30,
        "max_retries": 1,
        "max_retry_wait": 30,
        "max_steps": 2,
        "before_tool": lambda call: None,
        "after_tool": lambda result: None,
        "check_capabilities": False,
        "cache_responses": "always",
        "cache_responses_ttl": 60,
        "log": True,
        "stream": True,
        "raw": True,
        "max_cost": 5.0,
        "deferred": False,  # deferred=True sends no /chat/completions: tests/test_batches.py checks its wire
        "poll_interval": 1.0,
        "max_total_tokens": 100_000,
        "allow_unpriced": True,
        "system": "Be brief.",
        "api_key": router.api_key,
        "base_url": router.base_url,
        "model": "b/b",
        "messages": [{"role": "user", "content": "hi"}],
        "cache": True,
        "cache_ttl": "1h",
        "on_overflow": "drop_oldest",
        "summarize_with": M,
        "fallbacks": ["b/b"],
        "fallback_on": lambda answer: False,
    }


WAITING = [
    {"role": "user", "content": "Weather?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "w", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
]
"""A history whose last call waits for its result (answered at the `ANSWER` place without another request)."""


def finish(value: Any) -> Any:
    """Consume a stream (so its request is made); anything else as it is."""
    if isinstance(value, Stream):
        return "".join(value)
    return value


async def afinish(value: Any) -> Any:
    if isinstance(value, AsyncStream):
        return "".join([piece async for piece in value])
    return await value


def grid_answers(cells: list[Any]) -> list[Any]:
    """A grid's texts; a failed cell fails the test."""
    for cell in cells:
        if not cell.ok:
            raise AssertionError(f"a grid cell failed: {cell.error}")
    return [cell.text for cell in cells]


def run_at(place: str, flavour: str, router: OpenRouterDouble, options: dict[str, Any]) -> Any:
    """Give ``options`` at ``place`` (sync or async classes) and make one request there."""
    connect = {"base_url": router.base_url, "api_key": router.api_key}
    if flavour == "sync":
        if place == NEW_CHAT:
            return finish(Chat(M, **{**connect, **options})("hi"))
        if place == NEW_CALL:
            return finish(Call(M, **{**connect, **options})("hi"))
        if place == CHAT:
            return finish(Chat(M, **connect)("hi", **options))
        if place == CALL:
            return finish(Call(M, **connect)("hi", **options))
        if place == ANSWER:
            chat = Chat(M, **connect)
            chat.set_history(WAITING)
            return chat.answer_tool_calls({"w": "sunny"}, **options)
        if place == GRID:
            return grid_answers(list(Call(M, **connect).grid(["hi"], progress=False, **options).run()))
        result = Call(M, **connect).batch(["hi"], **options)
        if isinstance(result[0], Exception):
            raise result[0]
        return result

    async def main() -> Any:
        if place == NEW_CHAT:
            return await afinish(AsyncChat(M, **{**connect, **options})("hi"))
        if place == NEW_CALL:
            return await afinish(AsyncCall(M, **{**connect, **options})("hi"))
        if place == CHAT:
            return await afinish(AsyncChat(M, **connect)("hi", **options))
        if place == CALL:
            return await afinish(AsyncCall(M, **connect)("hi", **options))
        if place == ANSWER:
            achat = AsyncChat(M, **connect)
            achat.set_history(WAITING)
            return await achat.answer_tool_calls({"w": "sunny"}, **options)
        if place == GRID:
            grid = AsyncCall(M, **connect).grid(["hi"], progress=False, **options)
            return grid_answers([cell async for cell in grid.run()])
        result = await AsyncCall(M, **connect).batch(["hi"], **options)
        if isinstance(result[0], Exception):
            raise result[0]
        return result

    return asyncio.run(main())


def test_every_own_option_has_a_sample(router: OpenRouterDouble) -> None:
    assert set(samples(router)) == OWN, "add a sample value for the new option to samples()"


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("place", PLACES)
def test_own_options_never_reach_the_wire(router: OpenRouterDouble, place: str, flavour: str) -> None:
    values = samples(router, flavour)
    for option in OPTIONS:
        if option.wire:
            continue
        given = {option.name: values[option.name]}
        before = len(router.chat_requests)
        if place in option.where:
            run_at(place, flavour, router, given)
            sent = router.chat_requests[before:]
            assert sent, f"{option.name}= at {place}: no request was made"
            for body in sent:
                if option.name == "stream":  # the protocol's own field, which irouter writes for a stream
                    assert body["stream"] is True
                    continue
                assert option.name not in body, f"{option.name}= at {place} was sent: {body}"
        else:
            with pytest.raises((TypeError, ValueError)) as info:
                run_at(place, flavour, router, given)
            assert option.name in str(info.value)
            assert len(router.chat_requests) == before, f"{option.name}= at {place} was refused after sending"


@pytest.mark.parametrize("place", PLACES)
def test_request_fields_reach_the_wire_everywhere(router: OpenRouterDouble, place: str) -> None:
    run_at(place, "sync", router, {"temperature": 0.25, "extra_body": {"top_k": 3}, "models": [M, "b/b"]})
    body = router.chat_requests[-1]
    assert (body["temperature"], body["top_k"], body["models"]) == (0.25, 3, [M, "b/b"])
    assert "extra_body" not in body


def test_raw_on_a_chat_is_refused_not_sent(router: OpenRouterDouble, connect: dict) -> None:
    """Regression: ``Chat(...)("hi", raw=True)`` sent ``"raw": true`` to the server."""
    with pytest.raises(TypeError, match=r"raw= is not an option of chat\(\.\.\.\) \(it is accepted by call"):
        Chat(M, **connect)("hi", raw=True)
    assert router.chat_requests == []


def test_stream_in_a_batch_is_refused(router: OpenRouterDouble, connect: dict) -> None:
    """Regression: ``Call.batch(..., stream=True)`` sent ``stream`` and failed every item with "not valid JSON"."""
    with pytest.raises(TypeError, match=r"stream= is not an option of call\.batch"):
        Call(M, **connect).batch(["a", "b"], stream=True)
    with pytest.raises(TypeError, match=r"stream= is not an option of call\.batch"):
        asyncio.run(AsyncCall(M, **connect).batch(["a", "b"], stream=True))
    assert router.chat_requests == []


@pytest.mark.parametrize("cls", [Call, AsyncCall])
def test_raw_with_stream_is_refused(router: OpenRouterDouble, connect: dict, cls: Callable[..., Any]) -> None:
    """Regression: ``raw=True`` with ``stream=True`` was silently ignored."""
    with pytest.raises(ValueError, match="raw= and stream= cannot be used together"):
        cls(M, **connect)("hi", raw=True, stream=True)
    assert router.chat_requests == []
    assert finish(Call(M, **connect)("hi", raw=False, stream=True)) == "You said: hi"


def test_constructor_arguments_are_not_request_fields(router: OpenRouterDouble, connect: dict) -> None:
    """``system``/``api_key``/``base_url`` at a call would have been sent in the JSON body (the key too)."""
    chat = Chat(M, **connect)
    for name in ("system", "api_key", "base_url"):
        with pytest.raises(TypeError, match=rf"{name}= is not an option of chat\(\.\.\.\) \(it is accepted by Chat"):
            chat("hi", **{name: "x"})
    with pytest.raises(TypeError, match=r"max_cost= is not an option of Call\(\.\.\.\).*Chat\(\.\.\., max_cost"):
        Call(M, max_cost=1.0, **connect)
    assert router.chat_requests == []


def test_extra_body_cannot_turn_streaming_on(router: OpenRouterDouble, connect: dict) -> None:
    with pytest.raises(TypeError, match="extra_body may not set 'stream'"):
        Call(M, **connect)("hi", extra_body={"stream": True})
    assert router.chat_requests == []


@pytest.mark.parametrize(("typo", "meant"), [("max_step", "max_steps"), ("temprature", "temperature")])
def test_spelling_hints_come_from_the_table(
    router: OpenRouterDouble, monkeypatch: pytest.MonkeyPatch, typo: str, meant: str
) -> None:
    """Against OpenRouter (here: the double as ``OPENROUTER_BASE_URL``) a near-miss of any known name is a typo."""
    monkeypatch.setenv("OPENROUTER_BASE_URL", router.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", router.api_key)
    with pytest.raises(TypeError, match=f"did you mean {meant}="):
        Chat(M)("hi", **{typo: 1})
    assert router.chat_requests == []


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(o.name for o in OPTIONS)) | st.from_regex(r"[a-z_]{1,12}", fullmatch=True)),
    place=st.sampled_from(PLACES),
    pairs=st.booleans(),
)
def test_the_table_decides_every_name(names: list[str], place: str, pairs: bool) -> None:
    """Pure: a name the table does not accept at ``place`` is refused, and so is a combination that makes no sense;
    the rest split into a body that holds no name of irouter's own (``extra_body`` aside: `build_body` merges its
    contents) and no value to convert."""
    options = dict.fromkeys(names + (["raw", "stream"] if pairs else []), 1)
    refused = [n for n in options if n in BY_NAME and place not in BY_NAME[n].where]
    if refused:
        with pytest.raises(TypeError, match=f"{refused[0]}= is not an option of"):
            check(options, place, spelling=False)
        return
    if any(names <= set(options) for names, _ in CONFLICTS):
        with pytest.raises(ValueError, match="cannot be used together"):
            check(options, place, spelling=False)
        return
    check(options, place, spelling=False)
    body, kept = split(options)
    assert set(body) | set(kept) == set(options)
    assert not set(body) & set(kept)
    assert all(n == "extra_body" or n not in OWN for n in body)
    assert "tools" not in body
    assert all(n not in BY_NAME or not BY_NAME[n].wire or BY_NAME[n].converted for n in kept)
