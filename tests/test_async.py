"""AsyncChat and AsyncCall, batches, and the parity of every driver (sync, async, streamed or not)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

import irouter
from irouter import AsyncCall, AsyncChat, Call, Chat
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

M = "openai/gpt-4o-mini"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_async_chat_shapes(router: OpenRouterDouble, connect: dict) -> None:
    async def main() -> None:
        chat = AsyncChat(["a/a", "b/b"], system="Be brief.", **connect)
        assert await chat("hi") == {"a/a": "You said: hi", "b/b": "You said: hi"}
        assert chat.history["a/a"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "You said: hi"},
        ]
        assert chat.usage["a/a"]["total_tokens"] > 0
        single = AsyncChat(M, **connect)
        assert await single("one") == "You said: one"
        assert repr(single) == f"AsyncChat('openai/gpt-4o-mini', turns=1, tokens={single.usage['total_tokens']})"

    run(main())


def test_async_fan_out_is_concurrent(router: OpenRouterDouble, connect: dict) -> None:
    models = [f"m/{i}" for i in range(8)]
    barrier = threading.Barrier(len(models), timeout=10)

    def together(body: dict) -> Text:
        barrier.wait()
        return Text(body["model"])

    for m in models:
        router.queue(together, model=m)
    assert run(AsyncChat(models, **connect)("go")) == {m: m for m in models}


def test_async_stream(router: OpenRouterDouble, connect: dict) -> None:
    async def main() -> None:
        chat = AsyncChat(M, **connect)
        stream = chat("stream me", stream=True)
        pieces = [piece async for piece in stream]
        assert pieces == ["You", " said:", " stream", " me"]
        assert stream.result == "You said: stream me"
        assert chat.history[-1] == {"role": "assistant", "content": "You said: stream me"}
        multi = AsyncChat(["a/a", "b/b"], **connect)
        pairs = [pair async for pair in multi("x", stream=True)]
        assert {slug for slug, _ in pairs} == {"a/a", "b/b"}

    run(main())


def test_async_tools_awaited_and_sync_tools_in_threads(router: OpenRouterDouble, connect: dict) -> None:
    threads: dict[str, str] = {}

    async def fetch(key: str) -> str:
        """Fetch asynchronously."""
        threads["fetch"] = threading.current_thread().name
        await asyncio.sleep(0.01)
        return f"fetched {key}"

    def compute(x: int) -> int:
        """Compute synchronously."""
        threads["compute"] = threading.current_thread().name
        time.sleep(0.01)
        return x * 2

    router.queue(Text(tool_calls=[ToolCall("fetch", {"key": "k"}), ToolCall("compute", {"x": 21})]), "done")

    async def main() -> None:
        chat = AsyncChat(M, **connect)
        assert await chat("go", tools=[fetch, compute]) == "done"
        assert [m["content"] for m in chat.history if m["role"] == "tool"] == ["fetched k", "42"]
        assert threads["fetch"] == threading.current_thread().name  # awaited on the loop
        assert threads["compute"] != threading.current_thread().name  # ran in a worker thread

    run(main())


def test_async_failures(router: OpenRouterDouble, connect: dict) -> None:
    async def main() -> None:
        router.queue(Error(429, "slow down"), model="b/b")
        chat = AsyncChat(["a/a", "b/b"], max_retries=0, **connect)
        with pytest.raises(irouter.MultiModelError) as info:
            await chat("hi")
        assert info.value.answers == {"a/a": "You said: hi"}
        assert len(chat.history["b/b"]) == 1
        router.queue(Error(401, "User not found."))
        single = AsyncChat(M, **connect)
        with pytest.raises(irouter.AuthenticationError):
            await single("hi")
        with pytest.raises(ValueError, match="empty"):
            single("")  # a caller mistake raises at once, even before awaiting

    run(main())


def test_async_call_raw_and_across_event_loops(router: OpenRouterDouble, connect: dict) -> None:
    ask = AsyncCall(M, **connect)
    first = run(ask("one", raw=True))
    assert first.choices[0].message.content == "You said: one"
    assert run(ask("two")) == "You said: two"  # a second event loop gets its own connection pool


# --------------------------------------------------------------------------------------------- batches


def busy_counter() -> tuple[Any, dict[str, int]]:
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def respond(body: dict) -> Text:
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        text = body["messages"][-1]["content"]
        if text == "bad":
            return Error(400, "bad prompt")  # type: ignore[return-value]
        return Text(f"answer to {text}")

    return respond, state


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_batch_order_failures_and_concurrency(router: OpenRouterDouble, connect: dict, flavour: str) -> None:
    respond, state = busy_counter()
    router.default = respond
    prompts = [f"p{i}" for i in range(12)]
    prompts[5] = "bad"
    if flavour == "sync":
        results = Call(M, **connect).batch(prompts, concurrency=3)
    else:
        results = run(AsyncCall(M, **connect).batch(prompts, concurrency=3))
    assert [r for i, r in enumerate(results) if i != 5] == [f"answer to {p}" for p in prompts if p != "bad"]
    assert isinstance(results[5], irouter.BadRequestError)
    assert 1 < state["most"] <= 3


def test_batch_with_several_models(router: OpenRouterDouble, connect: dict) -> None:
    def respond(body: dict) -> Any:
        said = body["messages"][-1]["content"]
        return Error(500, "oops") if (body["model"], said) == ("b/b", "y") else Text(f"{body['model']}: {said}")

    router.default = respond
    results = run(AsyncCall(["a/a", "b/b"], **connect).batch(["x", "y"], concurrency=4))
    assert results[0] == {"a/a": "a/a: x", "b/b": "b/b: x"}
    assert results[1]["a/a"] == "a/a: y"
    assert isinstance(results[1]["b/b"], irouter.ServerError)
    with pytest.raises(ValueError, match="concurrency"):
        Call(M, **connect).batch(["x"], concurrency=0)
    with pytest.raises(TypeError, match="list"):
        Call(M, **connect).batch("just one string")


# --------------------------------------------------------------------------------------------- parity


@dataclass
class Weather:
    city: str
    celsius: float


def weather(city: str) -> str:
    """Weather in a city."""
    return f"{city}: 20C"


def script(router: OpenRouterDouble) -> None:
    """The same replies for every driver: a text turn, a tool loop, a structured answer, an error."""
    router.reset()
    router.queue(
        Text("Plain answer here.", usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}),
        Text("Checking.", tool_calls=[ToolCall("weather", {"city": "Oslo"}, id="t1")]),
        Text("It is 20C in Oslo."),
        Text('{"city": "Oslo", "celsius": 20}'),
        Error(502, "Provider returned error"),
        model=M,
    )


async def drive(kind: str, connect: dict) -> tuple[list[Any], Any, Any]:
    chat: Any = (
        AsyncChat(M, max_retries=0, **connect) if kind.startswith("async") else Chat(M, max_retries=0, **connect)
    )
    streamed = kind.endswith("stream")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("hello", {}),
        ("weather in Oslo?", {"tools": [weather]}),
        ("as data", {"response_format": Weather}),
        ("fails", {}),
    ]
    values: list[Any] = []
    for message, options in calls:
        try:
            if kind == "sync":
                values.append(chat(message, **options))
            elif kind == "sync-stream":
                stream = chat(message, stream=True, **options)
                list(stream)
                values.append(stream.result)
            elif kind == "async":
                values.append(await chat(message, **options))
            else:
                stream = chat(message, stream=True, **options)
                _ = [piece async for piece in stream]
                values.append(stream.result)
        except irouter.IrouterError as exc:
            values.append(type(exc).__name__)
    assert streamed == kind.endswith("stream")
    return values, chat.history, chat.usage


def test_every_driver_leaves_the_same_state(router: OpenRouterDouble, connect: dict) -> None:
    outcomes = {}
    bodies = {}
    for kind in ("sync", "sync-stream", "async", "async-stream"):
        script(router)
        outcomes[kind] = asyncio.run(drive(kind, connect))
        bodies[kind] = [
            {k: v for k, v in b.items() if k not in ("stream", "stream_options")} for b in router.chat_requests
        ]
    values, history, _ = outcomes["sync"]
    assert values == ["Plain answer here.", "It is 20C in Oslo.", Weather("Oslo", 20.0), "ServerError"]
    assert [m["role"] for m in history] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
    ]
    for kind in ("sync-stream", "async", "async-stream"):
        assert outcomes[kind] == outcomes["sync"], kind
        assert bodies[kind] == bodies["sync"], kind


def test_event_loops_are_let_go(router: OpenRouterDouble, connect: dict) -> None:
    """Each asyncio.run makes a new loop; pools and locks of closed loops must not pile up."""
    import gc

    from irouter._transport import _async_clients

    chat = AsyncChat(M, **connect)
    for _ in range(5):
        run(chat("hi"))
    gc.collect()
    assert sum(not loop.is_closed() for loop in _async_clients) == 0
    assert len(_async_clients) <= 1  # only the last, just closed, loop can still be there
    assert len(chat._async_locks) <= 1
