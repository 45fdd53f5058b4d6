"""Tool calling over HTTP: the seed's example, multi-step loops, parallel calls, every error path, max_steps."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import irouter
from irouter import Call, Chat
from irouter._engine import FINAL_PROMPT
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

GEMINI = "google/gemini-2.0-flash-exp:free"


def get_time(fmt="%Y-%m-%d %H:%M:%S", tz=None):
    """Returns the current time formatted as a string.

    :param fmt: Format string for strftime.
    :param tz: Optional timezone name (e.g., "UTC"). If given, uses that timezone.
    :returns: The formatted current time.
    """
    return datetime.now(ZoneInfo(tz)) if tz else datetime.now().strftime(fmt)


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def test_seed_get_time_example(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """The seed's "Tool usage" section, shape for shape (tool calls as plain dicts, not SDK objects)."""
    router.queue(
        Text(
            tool_calls=[ToolCall("get_time", '{"tz":"America/New_York"}', id="tool_0_get_time")], usage=usage(100, 20)
        ),
        Text("The current time in New York City is 7:45 AM on August 5, 2025.\n", usage=usage(70, 15)),
    )
    tc = Chat(GEMINI, **connect)
    answer = tc("What is the current time in New York City?", tools=[get_time])
    assert answer == "The current time in New York City is 7:45 AM on August 5, 2025.\n"
    history = tc.history
    assert history[:3] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the current time in New York City?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "tool_0_get_time",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": '{"tz":"America/New_York"}'},
                }
            ],
        },
    ]
    assert list(history[3]) == ["tool_call_id", "role", "content"]
    assert history[3]["tool_call_id"] == "tool_0_get_time"
    assert history[3]["role"] == "tool"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}-0[45]:00", history[3]["content"])
    assert history[4] == {
        "role": "assistant",
        "content": "The current time in New York City is 7:45 AM on August 5, 2025.\n",
    }
    assert tc.usage == usage(170, 35)
    json.dumps(tc.history)

    first, second = router.chat_requests
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_time",
                "description": "Returns the current time formatted as a string.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "fmt": {"description": "Format string for strftime.", "default": "%Y-%m-%d %H:%M:%S"},
                        "tz": {
                            "description": 'Optional timezone name (e.g., "UTC"). If given, uses that timezone.',
                            "default": None,
                        },
                    },
                    "required": [],
                },
            },
        }
    ]
    assert second["messages"] == history[:4]

    # the seed's second question: milliseconds, New Delhi; history keeps growing in the same shape
    router.queue(
        Text(tool_calls=[ToolCall("get_time", '{"fmt":"%H:%M:%S.%f","tz":"Asia/Kolkata"}', id="tool_0_get_time")]),
        Text("The current time in New Delhi is 17:15:23.939053.\n"),
    )
    tc("What is the current time in New Delhi? Omit the date, but include milliseconds.", tools=[get_time])
    assert len(tc.history) == 9
    assert [m["role"] for m in tc.history] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert tc.usage["total_tokens"] > 205


# ------------------------------------------------------------------------------------ the trip example

WEATHER = {"Paris": "18C, sunny", "London": "14C, rain", "Tokyo": "22C, clear"}
DISTANCE = {("Paris", "London"): 344, ("London", "Tokyo"): 9559, ("Paris", "Tokyo"): 9714}


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: The city name, e.g. "Paris".
    """
    return WEATHER[city]


def get_distance(origin: str, destination: str) -> int:
    """Distance between two cities in kilometres.

    Args:
        origin: Where the trip starts.
        destination: Where it ends.
    """
    return DISTANCE[(origin, destination)]


def test_multi_step_trip(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Weather for three cities (one step, three parallel calls), then two distances, then the answer."""
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": c}, id=f"w{i}") for i, c in enumerate(WEATHER)]),
        Text(
            "Now the distances.",
            tool_calls=[
                ToolCall("get_distance", {"origin": "Paris", "destination": "London"}, id="d0"),
                ToolCall("get_distance", {"origin": "London", "destination": "Tokyo"}, id="d1"),
            ],
        ),
        Text("Paris is sunny; the whole trip is 9903 km."),
    )
    chat = Chat("openai/gpt-4o-mini", **connect)
    assert (
        chat("Plan Paris -> London -> Tokyo", tools=[get_weather, get_distance])
        == "Paris is sunny; the whole trip is 9903 km."
    )
    roles = [m["role"] for m in chat.history]
    assert roles == ["system", "user", "assistant", "tool", "tool", "tool", "assistant", "tool", "tool", "assistant"]
    assert [m["content"] for m in chat.history if m["role"] == "tool"] == [
        "18C, sunny",
        "14C, rain",
        "22C, clear",
        "344",
        "9559",
    ]
    assert [m["tool_call_id"] for m in chat.history if m["role"] == "tool"] == ["w0", "w1", "w2", "d0", "d1"]
    assert chat.history[6]["content"] == "Now the distances."
    assert len(router.chat_requests) == 3
    assert all(len(r["tools"]) == 2 for r in router.chat_requests)
    assert router.chat_requests[2]["messages"] == chat.history[:-1]


def test_parallel_calls_run_at_once_and_keep_order(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    barrier = threading.Barrier(3, timeout=10)
    seen: list[str] = []

    def slow_echo(word: str) -> str:
        """Echo a word after every call of the step has started."""
        barrier.wait()  # breaks (and the tool reports an error) unless all three run at the same time
        seen.append(word)
        return word.upper()

    router.queue(Text(tool_calls=[ToolCall("slow_echo", {"word": w}) for w in ("a", "b", "c")]), "done")
    Chat("m/m", **connect)("go", tools=[slow_echo])
    tool_messages = [m for m in router.chat_requests[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["A", "B", "C"]
    assert sorted(seen) == ["a", "b", "c"]


# ------------------------------------------------------------------------------------ the model's mistakes


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def test_model_mistakes_go_back_to_the_model(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text(
            tool_calls=[
                ToolCall("nope", {}, id="c1"),
                ToolCall("divide", '{"a": 1, "b": ', id="c2"),
                ToolCall("divide", {"a": "one", "b": 2}, id="c3"),
                ToolCall("divide", {"a": 1, "b": 0}, id="c4"),
                ToolCall("divide", {"a": 1}, id="c5"),
                ToolCall("divide", {"a": 1, "b": 2, "c": 3}, id="c6"),
                ToolCall("divide", "[1, 2]", id="c7"),
                ToolCall("divide", {"a": 9, "b": 3}, id="c8"),
            ]
        ),
        "Sorry about those errors.",
    )
    chat = Chat("m/m", **connect)
    assert chat("divide things", tools=[divide]) == "Sorry about those errors."
    results = {m["tool_call_id"]: m["content"] for m in chat.history if m["role"] == "tool"}
    assert results["c1"] == "Error: unknown tool 'nope'. Available tools: divide."
    assert results["c2"].startswith("Error: the arguments are not valid JSON")
    assert results["c3"] == "Error: invalid arguments for divide: a must be a number, got 'one'"
    assert results["c4"] == "Error: ZeroDivisionError: float division by zero"
    assert results["c5"] == "Error: invalid arguments for divide: missing required argument(s) ['b']"
    assert results["c6"].startswith("Error: invalid arguments for divide: unexpected argument(s) ['c']")
    assert results["c7"] == "Error: the arguments must be a JSON object, got list."
    assert results["c8"] == "3.0"


def test_missing_arguments_key_means_no_arguments(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def version() -> str:
        """The version."""
        return "1.2.3"

    router.queue(Text(tool_calls=[ToolCall("version", None, id="v")]), "It is 1.2.3")
    chat = Chat("m/m", **connect)
    chat("version?", tools=[version])
    assert chat.history[2]["tool_calls"][0]["function"] == {"name": "version", "arguments": "{}"}
    assert chat.history[3] == {"tool_call_id": "v", "role": "tool", "content": "1.2.3"}


@dataclass
class Point:
    x: int
    y: int


def test_json_literals_and_typed_arguments(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    received: dict[str, Any] = {}

    def plot(points: list[Point], closed: bool, label: str | None = None) -> dict[str, Any]:
        """Plot points."""
        received.update(points=points, closed=closed, label=label)
        return {"ok": True, "n": len(points)}

    router.queue(
        Text(tool_calls=[ToolCall("plot", '{"points": [{"x": 1, "y": 2}], "closed": true, "label": null}')]), "plotted"
    )
    chat = Chat("m/m", **connect)
    chat("plot", tools=[plot])
    assert received == {"points": [Point(1, 2)], "closed": True, "label": None}
    assert chat.history[3]["content"] == '{"ok": true, "n": 1}'


def test_tool_that_raises_keyboard_interrupt_aborts_the_turn(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def stop() -> str:
        """Stop."""
        raise KeyboardInterrupt

    router.queue(Text(tool_calls=[ToolCall("stop", {})]))
    chat = Chat("m/m", **connect)
    with pytest.raises(KeyboardInterrupt):
        chat("stop", tools=[stop])
    assert chat.history == [{"role": "system", "content": "You are a helpful assistant."}]


def test_http_error_mid_loop_leaves_history(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})], usage=usage(10, 5)),
        Error(502, "Provider returned error"),
    )
    chat = Chat("m/m", max_retries=0, **connect)
    with pytest.raises(irouter.ServerError):
        chat("weather?", tools=[get_weather])
    assert len(chat.history) == 1
    assert chat.usage == usage(10, 5)  # the first request was billed


# ------------------------------------------------------------------------------------ the caller's mistakes


@pytest.mark.parametrize(
    ("tools", "exc", "match"),
    [
        ([3], TypeError, "callable"),
        ([get_weather, get_weather], ValueError, "Two tools are named 'get_weather'"),
        ([lambda city: city], ValueError, "not allowed"),
        (get_weather, TypeError, "list"),
    ],
)
def test_caller_mistakes_raise_before_any_request(
    router: OpenRouterDouble, connect: dict[str, str], tools: Any, exc: type[Exception], match: str
) -> None:
    chat = Chat("m/m", **connect)
    with pytest.raises(exc, match=match):
        chat("hi", tools=tools)
    with pytest.raises(exc, match=match):
        Chat("m/m", tools=tools, **connect)
    with pytest.raises(ValueError, match="max_steps"):
        chat("hi", tools=[get_weather], max_steps=0)
    with pytest.raises(TypeError, match="before_tool"):
        chat("hi", tools=[get_weather], before_tool="yes")
    assert router.requests == []


# ------------------------------------------------------------------------------------ max_steps


def test_max_steps_asks_for_a_summary_without_tools(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Text(tool_calls=[ToolCall("get_weather", {"city": "London"})]),
        Text("I checked Paris and London; Tokyo is still left."),
    )
    chat = Chat("m/m", **connect)
    answer = chat("Weather in Paris, London and Tokyo?", tools=[get_weather], max_steps=2)
    assert answer == "I checked Paris and London; Tokyo is still left."
    assert len(router.chat_requests) == 3
    last = router.chat_requests[-1]
    assert last["tool_choice"] == "none"
    assert last["messages"][-1] == {"role": "user", "content": FINAL_PROMPT}
    assert [m["role"] for m in chat.history] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "user",
        "assistant",
    ]
    assert chat.history[-1] == {"role": "assistant", "content": answer}
    assert chat.turns == 1  # irouter's own summary request is not a turn of the user's


def test_summary_reply_that_still_calls_tools_keeps_history_valid(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Text("Summary.", tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})]),
    )
    chat = Chat("m/m", **connect)
    assert chat("go", tools=[get_weather], max_steps=1) == "Summary."
    assert chat.history[-1] == {"role": "assistant", "content": "Summary."}


# ------------------------------------------------------------------------------------ more shapes


def test_tools_as_chat_defaults_and_options(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat("m/m", tools=[get_weather], tool_choice="required", parallel_tool_calls=False, **connect)
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})]), "Clear in Tokyo.")
    assert chat("Tokyo?") == "Clear in Tokyo."
    body = router.chat_requests[0]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert "max_steps" not in body
    assert "before_tool" not in body
    chat("no tools this time", tools=None)
    assert "tools" not in router.chat_requests[-1]


def test_server_tool_dicts_pass_through(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    search = {"type": "openrouter:web_search", "parameters": {"max_results": 2}}
    Chat("m/m", **connect)("news?", tools=[search, get_weather])
    assert router.chat_requests[-1]["tools"][0] == search
    assert router.chat_requests[-1]["tools"][1]["function"]["name"] == "get_weather"


def test_hooks_watch_and_veto(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    seen: list[irouter.ToolCall] = []
    results: list[irouter.ToolResult] = []

    def before(call: irouter.ToolCall) -> bool | str | None:
        seen.append(call)
        if call.arguments == {"city": "London"}:
            return False
        if call.arguments == {"city": "Tokyo"}:
            return "cached: 22C"
        return None

    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": c}, id=c) for c in ("Paris", "London", "Tokyo")]), "ok"
    )
    chat = Chat("m/m", **connect)
    chat("weather", tools=[get_weather], before_tool=before, after_tool=results.append)
    assert [c.name for c in seen] == ["get_weather"] * 3
    assert {c.model for c in seen} == {"m/m"}
    assert {c.step for c in seen} == {1}
    contents = {m["tool_call_id"]: m["content"] for m in chat.history if m["role"] == "tool"}
    assert contents == {
        "Paris": "18C, sunny",
        "London": "Error: the user refused to run get_weather.",
        "Tokyo": "cached: 22C",
    }
    assert sorted(r.content for r in results) == sorted(contents.values())
    assert next(r for r in results if r.call.id == "Paris").value == "18C, sunny"


def test_methods_partials_and_async_tools(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    class Shop:
        def __init__(self) -> None:
            self.prices = {"apple": 2}

        def price(self, item: str) -> int:
            """Price of an item."""
            return self.prices[item]

    def scale(value: int, factor: int) -> int:
        """Scale a value."""
        return value * factor

    async def fetch(key: str) -> str:
        """Fetch a key asynchronously."""
        await asyncio.sleep(0.01)
        return f"value of {key}"

    triple = functools.partial(scale, factor=3)
    triple.__name__ = "triple"  # type: ignore[attr-defined]
    router.queue(
        Text(
            tool_calls=[
                ToolCall("price", {"item": "apple"}),
                ToolCall("triple", {"value": 5}),
                ToolCall("fetch", {"key": "k"}),
            ]
        ),
        "done",
    )
    chat = Chat("m/m", **connect)
    chat("go", tools=[Shop().price, triple, fetch])
    assert [m["content"] for m in chat.history if m["role"] == "tool"] == ["2", "15", "value of k"]
    props = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in router.chat_requests[0]["tools"]}
    assert props["price"] == {"item": {"type": "string"}}
    assert props["triple"] == {"value": {"type": "integer"}, "factor": {"type": "integer", "default": 3}}


def test_async_tool_inside_a_running_event_loop(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """As in Jupyter: the calling thread already runs an event loop."""

    async def ping() -> str:
        """Ping."""
        return "pong"

    router.queue(Text(tool_calls=[ToolCall("ping", {})]), "ok")
    chat = Chat("m/m", **connect)

    async def main() -> Any:
        return chat("ping", tools=[ping])

    assert asyncio.run(main()) == "ok"
    assert chat.history[3]["content"] == "pong"


def test_each_model_runs_its_own_loop(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), "Paris: sunny", model="a/a")
    router.queue("No tools needed.", model="b/b")
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})]),
        Text(tool_calls=[ToolCall("get_weather", {"city": "London"})]),
        "Both done",
        model="c/c",
    )
    chat = Chat(["a/a", "b/b", "c/c"], **connect)
    assert chat("weather", tools=[get_weather]) == {
        "a/a": "Paris: sunny",
        "b/b": "No tools needed.",
        "c/c": "Both done",
    }
    assert [len(chat.history[m]) for m in ("a/a", "b/b", "c/c")] == [5, 3, 7]
    assert chat.history["c/c"][5] == {
        "tool_call_id": chat.history["c/c"][4]["tool_calls"][0]["id"],
        "role": "tool",
        "content": "14C, rain",
    }


def test_call_runs_tools_too(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]), "Sunny in Paris.")
    assert Call("m/m", **connect)("Paris?", tools=[get_weather]) == "Sunny in Paris."
    assert router.chat_requests[-1]["messages"][-1]["content"] == "18C, sunny"
