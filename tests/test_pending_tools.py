"""Tool calls irouter cannot run (tools given as schema dicts) are left pending for the caller: the turn returns,
``chat.pending_tool_calls`` lists them, ``chat.answer_tool_calls`` sends the results and goes on, and no new
message may be sent meanwhile (an assistant ``tool_calls`` message without results is refused by
OpenAI-format APIs). Over HTTP, sync and async, one model and several."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel

import irouter
from irouter import AsyncChat, Chat
from irouter.testing import OpenRouterDouble, Text, ToolCall

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def test_calls_to_schema_tools_are_left_pending_and_answered(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text(
            "Let me look.",
            tool_calls=[
                ToolCall("get_weather", {"city": "Paris"}, id="p"),
                ToolCall("get_weather", {"city": "Oslo"}, id="o"),
            ],
        ),
        "Paris is sunny, Oslo rainy.",
    )
    chat = Chat("m/m", **connect)
    assert chat("Weather in Paris and Oslo?", tools=[WEATHER]) == "Let me look."  # returns, with the text so far
    pending = chat.pending_tool_calls
    assert [(c.id, c.name, c.arguments, c.step) for c in pending] == [
        ("p", "get_weather", {"city": "Paris"}, 1),
        ("o", "get_weather", {"city": "Oslo"}, 1),
    ]
    assert isinstance(pending[0], irouter.ToolCall)
    assert chat.history[-1]["tool_calls"][1]["id"] == "o"
    assert len(router.chat_requests) == 1

    with pytest.raises(RuntimeError, match=r"answer_tool_calls.*pending_tool_calls") as refused:
        chat("And Rome?")
    assert "get_weather (id 'p')" in str(refused.value)
    assert len(router.chat_requests) == 1  # nothing was sent

    answer = chat.answer_tool_calls({"o": "rain, 9C", "p": {"sky": "sunny", "celsius": 24}})
    assert answer == "Paris is sunny, Oslo rainy."
    follow_up = router.chat_requests[1]
    assert follow_up["tools"] == [WEATHER]  # the turn goes on with its own tools
    assert tool_messages(follow_up) == [  # in the model's order, JSON for data
        {"tool_call_id": "p", "role": "tool", "content": '{"sky": "sunny", "celsius": 24}'},
        {"tool_call_id": "o", "role": "tool", "content": "rain, 9C"},
    ]
    assert follow_up["messages"] == chat.history[:-1]
    assert chat.pending_tool_calls == []
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert chat.turns == 1

    router.queue("Rome is warm.")
    assert chat("And Rome?") == "Rome is warm."  # accepted again


def test_without_pending_calls_the_history_stayed_invalid_before(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """Before: the turn returned '' and the next request carried tool_calls without results. Now no request can
    carry an unanswered call."""
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "ok", "fine")
    chat = Chat("m/m", **connect)
    assert chat("Weather?", tools=[WEATHER]) == ""
    chat.answer_tool_calls({"p": "sunny"})
    chat("thanks")
    for body in router.chat_requests:
        called = {c["id"] for m in body["messages"] for c in m.get("tool_calls") or []}
        answered = {m["tool_call_id"] for m in tool_messages(body)}
        assert called == answered


def test_answers_are_checked_before_anything_is_sent(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat("m/m", **connect)
    with pytest.raises(ValueError, match="No tool calls are waiting"):
        chat.answer_tool_calls({"x": "1"})
    router.queue(
        Text(
            tool_calls=[ToolCall("get_weather", {"city": "A"}, id="a"), ToolCall("get_weather", {"city": "B"}, id="b")]
        )
    )
    chat("go", tools=[WEATHER])
    with pytest.raises(ValueError, match=r"pending \['a', 'b'\]; not answered: \['b'\]"):
        chat.answer_tool_calls({"a": "1"})
    with pytest.raises(ValueError, match=r"not pending: \['c'\]"):
        chat.answer_tool_calls({"a": "1", "b": "2", "c": "3"})
    with pytest.raises(TypeError, match="dict"):
        chat.answer_tool_calls(["a", "b"])  # type: ignore[arg-type]
    assert len(router.chat_requests) == 1
    assert len(chat.pending_tool_calls) == 2


def test_an_exception_as_a_result_reads_as_an_error(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Atlantis"}, id="x")]), "No such city.")
    chat = Chat("m/m", **connect)
    chat("Weather in Atlantis?", tools=[WEATHER])
    assert chat.answer_tool_calls({"x": LookupError("unknown city")}) == "No such city."
    assert tool_messages(router.chat_requests[-1])[0]["content"] == "Error: LookupError: unknown city"


def test_local_calls_run_and_schema_calls_wait(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """One step calls both kinds: irouter runs its own at once; the rest wait; later steps run local tools again."""
    ran: list[str] = []

    def get_time(tz: str) -> str:
        """The time in a timezone."""
        ran.append(tz)
        return f"12:00 in {tz}"

    router.queue(
        Text(
            tool_calls=[
                ToolCall("get_time", {"tz": "UTC"}, id="t"),
                ToolCall("get_weather", {"city": "Paris"}, id="w"),
                ToolCall("nonsense", {}, id="n"),
            ]
        ),
        Text(tool_calls=[ToolCall("get_time", {"tz": "CET"}, id="t2")]),
        "Noon, sunny.",
    )
    chat = Chat("m/m", **connect)
    assert chat("Time and weather?", tools=[get_time, WEATHER]) == ""
    assert ran == ["UTC"]
    assert [c.id for c in chat.pending_tool_calls] == ["w"]
    contents = {m["tool_call_id"]: m["content"] for m in chat.history if m["role"] == "tool"}
    assert contents == {"t": "12:00 in UTC", "n": "Error: unknown tool 'nonsense'. Available tools: get_time."}
    assert len(router.chat_requests) == 1

    assert chat.answer_tool_calls({"w": "sunny"}) == "Noon, sunny."
    assert ran == ["UTC", "CET"]  # the turn's own tools still run after the answer
    second = router.chat_requests[1]
    assert [m["tool_call_id"] for m in tool_messages(second)] == ["t", "n", "w"]
    assert [t.get("function", {}).get("name") for t in second["tools"]] == ["get_time", "get_weather"]


def test_keyword_arguments_override_the_turn_options(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "ok")
    chat = Chat("m/m", **connect)
    chat("Weather?", tools=[WEATHER], temperature=0.5, max_tokens=50)
    chat.answer_tool_calls({"p": "sunny"}, temperature=0)
    body = router.chat_requests[-1]
    assert (body["temperature"], body["max_tokens"], body["tools"]) == (0, 50, [WEATHER])


def interrupt() -> str:
    """Stands for Ctrl-C pressed while a tool runs."""
    raise KeyboardInterrupt


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_an_interrupted_or_failed_answer_leaves_the_turn_options_as_they_were(
    router: OpenRouterDouble, connect: dict[str, str], flavour: str
) -> None:
    """Keyword arguments given to an answer_tool_calls that was interrupted (or failed) were never part of the
    turn: the next answer goes on with the turn's own options, as its history does."""
    from irouter.testing import Error

    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]),
        Text(tool_calls=[ToolCall("interrupt", {}, id="i")]),
        Error(400, "bad request"),
        "Sunny.",
    )
    chat = (AsyncChat if flavour == "async" else Chat)("m/m", **connect)

    async def answer(**kwargs: Any) -> Any:
        reply = chat.answer_tool_calls({"p": "sunny"}, **kwargs)
        return await reply if flavour == "async" else reply

    def run(coroutine: Any) -> Any:
        return asyncio.run(coroutine)

    async def ask() -> Any:
        reply = chat("Weather?", tools=[WEATHER], temperature=0.5)
        return await reply if flavour == "async" else reply

    run(ask())
    with pytest.raises(KeyboardInterrupt):
        run(answer(tools=[WEATHER, interrupt], temperature=1.5))
    with pytest.raises(irouter.BadRequestError):
        run(answer(temperature=1.0, max_tokens=7))
    assert [c.id for c in chat.pending_tool_calls] == ["p"]
    assert run(answer()) == "Sunny."
    body = router.chat_requests[-1]
    assert (body["temperature"], body["tools"], "max_tokens" in body) == (0.5, [WEATHER], False)
    assert [m["tool_call_id"] for m in tool_messages(body)] == ["p"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_answer_tool_calls_refuses_stream(router: OpenRouterDouble, connect: dict[str, str], flavour: str) -> None:
    """answer_tool_calls returns the whole answer: stream=True is refused before sending, not silently ignored."""
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "Sunny.")
    chat = (AsyncChat if flavour == "async" else Chat)("m/m", **connect)

    async def main() -> None:
        first = chat("Weather?", tools=[WEATHER])
        if flavour == "async":
            await first
        with pytest.raises(TypeError, match=r"stream= is not an option of chat\.answer_tool_calls"):
            chat.answer_tool_calls({"p": "sunny"}, stream=True)
        assert len(router.chat_requests) == 1
        answer = chat.answer_tool_calls({"p": "sunny"})
        assert (await answer if flavour == "async" else answer) == "Sunny."

    asyncio.run(main())


def wait_for_requests(router: OpenRouterDouble, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(router.chat_requests) < count:
        assert time.monotonic() < deadline, "the request never came"
        time.sleep(0.01)


@pytest.mark.parametrize("flavour", ["threads", "tasks"])
def test_a_message_sent_meanwhile_does_not_bury_calls_left_pending(
    router: OpenRouterDouble, connect: dict[str, str], flavour: str
) -> None:
    """Two turns at once on one chat (threads, or tasks): the first leaves calls pending while the second waits
    for its turn. The second must then be refused like any message after pending calls, not sent after them
    (a history with unanswered calls, which OpenAI-format servers refuse, and calls no longer listed)."""
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")], delay=0.5), "late")
    if flavour == "threads":
        chat: Any = Chat("m/m", **connect)
        first = threading.Thread(target=chat, args=("Weather?",), kwargs={"tools": [WEATHER]})
        first.start()
        wait_for_requests(router, 1)  # the first turn holds the chat
        with pytest.raises(RuntimeError, match="answer_tool_calls"):
            chat("Something else")
        first.join()
    else:
        chat = AsyncChat("m/m", **connect)

        async def main() -> None:
            first = asyncio.ensure_future(chat("Weather?", tools=[WEATHER]))
            while not router.chat_requests:  # the first turn holds the chat
                await asyncio.sleep(0.01)
            with pytest.raises(RuntimeError, match="answer_tool_calls"):
                await chat("Something else")
            await first

        asyncio.run(main())
    assert len(router.chat_requests) == 1
    assert [c.id for c in chat.pending_tool_calls] == ["p"]
    assert chat.history[-1]["tool_calls"][0]["id"] == "p"


def test_calls_answered_twice_at_once_are_sent_once(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), Text("Sunny.", delay=0.5))
    chat = Chat("m/m", **connect)
    chat("Weather?", tools=[WEATHER])
    first = threading.Thread(target=chat.answer_tool_calls, args=({"p": "sunny"},))
    first.start()
    wait_for_requests(router, 2)
    with pytest.raises(RuntimeError, match="answered meanwhile"):
        chat.answer_tool_calls({"p": "rainy"})
    first.join()
    assert len(router.chat_requests) == 2
    assert [m["content"] for m in tool_messages(router.chat_requests[-1])] == ["sunny"]
    assert [m["role"] for m in chat.history[-3:]] == ["assistant", "tool", "assistant"]


def test_a_history_with_calls_left_unanswered_before_a_message_is_refused(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """Calls may wait for results only at the end of a history: set_history and a loaded chat refuse calls buried
    under a later message (every request would carry them, and OpenAI-format servers refuse that)."""
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    asked = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    buried = [*asked, {"role": "user", "content": "And now?"}]
    chat = Chat("m/m", **connect)
    with pytest.raises(ValueError, match=r"history\[2\] comes after tool calls of history\[1\] that have no result"):
        chat.set_history(buried)
    assert chat.history == chat.history[:1]
    data = Chat("m/m", **connect).to_dict()
    data["history"]["m/m"] = buried
    with pytest.raises(ValueError, match=r"Saved chat: .*comes after tool calls"):
        Chat.from_dict(data, **connect)

    chat.set_history(asked)  # waiting at the end: fine
    assert [c.id for c in chat.pending_tool_calls] == ["c1"]
    answered = [*asked, {"role": "tool", "tool_call_id": "c1", "content": "rain"}, {"role": "user", "content": "ok"}]
    chat.set_history(answered)
    assert chat.pending_tool_calls == []
    assert router.requests == []


class Forecast(BaseModel):
    city: str
    sky: str


def test_structured_output_is_parsed_once_the_model_answers(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), '{"city": "Paris", "sky": "sunny"}'
    )
    chat = Chat("m/m", **connect)
    assert chat("Forecast for Paris", tools=[WEATHER], response_format=Forecast) == ""  # nothing to parse yet
    assert chat.answer_tool_calls({"p": "sunny"}) == Forecast(city="Paris", sky="sunny")
    assert router.chat_requests[-1]["response_format"]["json_schema"]["name"] == "Forecast"


def test_a_failed_continuation_keeps_the_calls_pending(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    from irouter.testing import Error

    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), Error(400, "bad request"))
    chat = Chat("m/m", **connect)
    chat("Weather?", tools=[WEATHER])
    with pytest.raises(irouter.BadRequestError):
        chat.answer_tool_calls({"p": "sunny"})
    assert [c.id for c in chat.pending_tool_calls] == ["p"]  # atomic: the answers were not kept either
    router.queue("Sunny.")
    assert chat.answer_tool_calls({"p": "sunny"}) == "Sunny."


def test_streamed_turn_leaves_calls_pending(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text("Checking", tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "Sunny.")
    chat = Chat("m/m", **connect)
    assert "".join(chat("Weather?", tools=[WEATHER], stream=True)) == "Checking"
    assert [c.id for c in chat.pending_tool_calls] == ["p"]
    assert chat.answer_tool_calls({"p": "sunny"}) == "Sunny."


def test_pending_calls_survive_save_and_load(router: OpenRouterDouble, connect: dict[str, str], tmp_path: Any) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "Sunny.")
    chat = Chat("m/m", **connect)
    chat("Weather?", tools=[WEATHER])
    loaded = Chat.load(chat.save(tmp_path / "chat.json"), **connect)
    assert [c.id for c in loaded.pending_tool_calls] == ["p"]
    with pytest.raises(RuntimeError, match="answer_tool_calls"):
        loaded("next")
    assert loaded.answer_tool_calls({"p": "sunny"}, tools=[WEATHER]) == "Sunny."
    assert router.chat_requests[-1]["tools"] == [WEATHER]


def test_reset_history_drops_pending_calls(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]))
    chat = Chat("m/m", **connect)
    chat("Weather?", tools=[WEATHER])
    chat.reset_history()
    assert chat.pending_tool_calls == []
    assert chat("hello") == "You said: hello"


def test_several_models_each_wait_for_their_own(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="a1")]), "A: sunny.", model="a/a")
    router.queue("B needs no tools.", model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    assert chat("Weather in Paris?", tools=[WEATHER]) == {"a/a": "", "b/b": "B needs no tools."}
    pending = chat.pending_tool_calls
    assert [c.id for c in pending["a/a"]] == ["a1"]
    assert pending["b/b"] == []
    assert pending["a/a"][0].model == "a/a"
    with pytest.raises(RuntimeError, match=r"a/a: get_weather"):
        chat("next")
    with pytest.raises(TypeError, match=r"\{slug: \{call_id: result"):
        chat.answer_tool_calls({"a1": "sunny"})
    with pytest.raises(ValueError, match="for b/b"):
        chat.answer_tool_calls({"b/b": {"x": "1"}})
    assert chat.answer_tool_calls({"a/a": {"a1": "sunny"}}) == {"a/a": "A: sunny."}
    assert tool_messages(router.chat_requests[-1]) == [{"tool_call_id": "a1", "role": "tool", "content": "sunny"}]
    assert router.chat_requests[-1]["model"] == "a/a"
    assert chat.pending_tool_calls == {"a/a": [], "b/b": []}
    assert len(chat.history["b/b"]) == 3


def test_async_chat_answers_too(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="p")]), "Sunny in Paris.")

    async def main() -> None:
        chat = AsyncChat("m/m", **connect)
        assert await chat("Weather?", tools=[WEATHER]) == ""
        assert [c.id for c in chat.pending_tool_calls] == ["p"]
        with pytest.raises(RuntimeError, match="answer_tool_calls"):
            chat("next")  # refused at once, before anything is awaited
        with pytest.raises(ValueError, match="not answered"):
            chat.answer_tool_calls({})
        assert await chat.answer_tool_calls({"p": {"sky": "sunny"}}) == "Sunny in Paris."
        assert chat.pending_tool_calls == []

    asyncio.run(main())
    assert tool_messages(router.chat_requests[-1]) == [
        {"tool_call_id": "p", "role": "tool", "content": json.dumps({"sky": "sunny"})}
    ]


def test_async_several_models(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "A"}, id="a")]), "A done.", model="a/a")
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "B"}, id="b")]), "B done.", model="b/b")

    async def main() -> Any:
        chat = AsyncChat(["a/a", "b/b"], **connect)
        await chat("go", tools=[WEATHER])
        return await chat.answer_tool_calls({"a/a": {"a": "1"}, "b/b": {"b": "2"}})

    assert asyncio.run(main()) == {"a/a": "A done.", "b/b": "B done."}
