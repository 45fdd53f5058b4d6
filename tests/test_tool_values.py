"""Tools that always work, over HTTP: typed parameters the model can fill, arguments that fail their own checks,
results that reach the model as text or JSON, and the summary after ``max_steps`` that never comes back empty."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import math
import uuid
from pathlib import Path
from typing import Any, Literal

import pydantic
import pytest

from irouter import Chat
from irouter._engine import FINAL_PROMPT
from irouter.testing import OpenRouterDouble, Text, ToolCall


def tool_messages(body: dict[str, Any]) -> dict[str, str]:
    """``{tool_call_id: content}`` of the tool messages in a request body the server received."""
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


# ------------------------------------------------------------------------------------ typed parameters


def test_string_typed_parameters_get_formats_and_arrive_converted(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """Path, Decimal, datetime/date/time/timedelta, UUID and bytes: a string schema with a format (base64 for
    bytes), and the model's strings arrive as those types. Before, the schema said "anything" and every value was
    refused."""
    received: dict[str, Any] = {}

    def archive(
        folder: Path,
        amount: decimal.Decimal,
        when: dt.datetime,
        day: dt.date,
        at: dt.time,
        wait: dt.timedelta,
        ticket: uuid.UUID,
        payload: bytes,
        tags: list[uuid.UUID] | None = None,
        due: dt.date | None = None,
    ) -> str:
        """Archive a payment."""
        received.update({k: v for k, v in locals().items() if k != "received"})
        return "archived"

    ticket = uuid.UUID("12345678-1234-5678-1234-567812345678")
    arguments = {
        "folder": "/srv/archive",
        "amount": "12.10",
        "when": "2025-08-05T07:45:20Z",
        "day": "2025-08-05",
        "at": "07:45:20",
        "wait": "P1DT2H",
        "ticket": str(ticket),
        "payload": "AP8=",
        "tags": [str(ticket)],
    }
    router.queue(Text(tool_calls=[ToolCall("archive", arguments, id="a1")]), "Done.")
    chat = Chat("m/m", **connect)
    assert chat("Archive it", tools=[archive]) == "Done."

    properties = router.chat_requests[0]["tools"][0]["function"]["parameters"]["properties"]
    assert properties["folder"] == {"type": "string", "format": "path"}
    assert properties["amount"] == {"type": "string", "format": "decimal"}
    assert properties["when"] == {"type": "string", "format": "date-time"}
    assert properties["day"] == {"type": "string", "format": "date"}
    assert properties["at"] == {"type": "string", "format": "time"}
    assert properties["wait"] == {"type": "string", "format": "duration"}
    assert properties["ticket"] == {"type": "string", "format": "uuid"}
    assert properties["payload"] == {"type": "string", "contentEncoding": "base64"}
    assert properties["tags"] == {
        "anyOf": [{"type": "array", "items": {"type": "string", "format": "uuid"}}, {"type": "null"}],
        "default": None,
    }
    assert tool_messages(router.chat_requests[1]) == {"a1": "archived"}
    assert received == {
        "folder": Path("/srv/archive"),
        "amount": decimal.Decimal("12.10"),
        "when": dt.datetime(2025, 8, 5, 7, 45, 20, tzinfo=dt.timezone.utc),
        "day": dt.date(2025, 8, 5),
        "at": dt.time(7, 45, 20),
        "wait": dt.timedelta(days=1, hours=2),
        "ticket": ticket,
        "payload": b"\x00\xff",
        "tags": [ticket],
        "due": None,
    }


def test_badly_formatted_strings_go_back_to_the_model(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def pay(amount: decimal.Decimal, ticket: uuid.UUID, payload: bytes, day: dt.date) -> str:
        """Pay."""
        return "paid"

    router.queue(
        Text(
            tool_calls=[
                ToolCall(
                    "pay",
                    {"amount": "ten", "ticket": str(uuid.UUID(int=0)), "payload": "", "day": "2025-01-01"},
                    id="c1",
                ),
                ToolCall("pay", {"amount": 10.5, "ticket": "nope", "payload": "", "day": "2025-01-01"}, id="c2"),
                ToolCall(
                    "pay", {"amount": 1, "ticket": str(uuid.UUID(int=0)), "payload": "!!", "day": "2025-01-01"}, id="c3"
                ),
                ToolCall("pay", {"amount": 1, "ticket": str(uuid.UUID(int=0)), "payload": "", "day": "May"}, id="c4"),
                ToolCall(
                    "pay", {"amount": 1, "ticket": str(uuid.UUID(int=0)), "payload": "", "day": "2025-01-01"}, id="c5"
                ),
            ]
        ),
        "ok",
    )
    Chat("m/m", **connect)("pay", tools=[pay])
    assert tool_messages(router.chat_requests[1]) == {
        "c1": "Error: invalid arguments for pay: amount must be a decimal number, got 'ten'",
        "c2": "Error: invalid arguments for pay: ticket must be a UUID, got 'nope'",
        "c3": "Error: invalid arguments for pay: payload must be base64 text, got '!!'",
        "c4": "Error: invalid arguments for pay: day must be an ISO 8601 date, got 'May'",
        "c5": "paid",
    }


def test_positional_only_parameters_are_offered_and_passed(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """``math.sqrt(x, /)`` was offered with no parameters at all, so the model could never pass ``x``."""

    def scale(value: float, factor: float = 2.0, /, *, offset: float = 0.0) -> float:
        """Scale a value."""
        return value * factor + offset

    router.queue(
        Text(
            tool_calls=[
                ToolCall("sqrt", {"x": 16}, id="s"),
                ToolCall("scale", {"value": 3, "offset": 1}, id="d"),
                ToolCall("scale", {"value": 3, "factor": 10}, id="f"),
            ]
        ),
        "4, 7 and 30.",
    )
    chat = Chat("m/m", **connect)
    assert chat("sqrt of 16?", tools=[math.sqrt, scale]) == "4, 7 and 30."
    sqrt_schema, scale_schema = (t["function"] for t in router.chat_requests[0]["tools"])
    assert sqrt_schema["name"] == "sqrt"
    assert sqrt_schema["parameters"]["required"] == ["x"]
    assert list(scale_schema["parameters"]["properties"]) == ["value", "factor", "offset"]
    assert scale_schema["parameters"]["required"] == ["value"]
    assert tool_messages(router.chat_requests[1]) == {"s": "4.0", "d": "7.0", "f": "30.0"}


# ------------------------------------------------------------------------------------ the type's own checks


@dataclasses.dataclass
class Booking:
    guests: int
    room: Literal["single", "double"] = "double"

    def __post_init__(self) -> None:
        if self.guests < 1:
            raise ValueError("guests must be at least 1")
        if self.room == "single" and self.guests > 1:
            raise TypeError("a single room takes one guest")


class Stay(pydantic.BaseModel):
    nights: int

    @pydantic.field_validator("nights")
    @classmethod
    def positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("nights must be positive")
        return value


def test_arguments_failing_their_own_checks_go_back_to_the_model(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """A ``__post_init__`` or a pydantic validator that refuses the values crashed the whole turn."""

    def book(booking: Booking, stay: Stay) -> str:
        """Book a room."""
        return f"{booking.guests} guests, {stay.nights} nights"

    router.queue(
        Text(
            tool_calls=[
                ToolCall("book", {"booking": {"guests": 0}, "stay": {"nights": 2}}, id="b1"),
                ToolCall("book", {"booking": {"guests": 2, "room": "single"}, "stay": {"nights": 2}}, id="b2"),
                ToolCall("book", {"booking": {"guests": 2}, "stay": {"nights": 0}}, id="b3"),
                ToolCall("book", {"booking": {"guests": 2}, "stay": {"nights": 3}}, id="b4"),
            ]
        ),
        "Booked.",
    )
    chat = Chat("m/m", **connect)
    assert chat("book", tools=[book]) == "Booked."
    results = tool_messages(router.chat_requests[1])
    assert results["b1"] == "Error: invalid arguments for book: booking does not fit Booking: guests must be at least 1"
    assert results["b2"] == (
        "Error: invalid arguments for book: booking does not fit Booking: TypeError: a single room takes one guest"
    )
    assert results["b3"].startswith("Error: invalid arguments for book: stay does not fit Stay: ")
    assert "nights must be positive" in results["b3"]
    assert results["b4"] == "2 guests, 3 nights"
    assert [m["role"] for m in chat.history][-2:] == ["tool", "assistant"]


# ------------------------------------------------------------------------------------ results as text or JSON


@dataclasses.dataclass
class Reading:
    city: str
    at: dt.datetime


class Report(pydantic.BaseModel):
    city: str
    celsius: float


def test_results_reach_the_model_as_text_or_json(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Each result was ``str()``-ed before: ``"{1, 2}"``, ``"b'\\x00'"``, ``"<generator object ...>"``."""
    at = dt.datetime(2025, 8, 5, 7, 45)
    results: dict[str, Any] = {
        "model": Report(city="Oslo", celsius=14.5),
        "record": Reading("Oslo", at),
        "set": {3, 1, 2},
        "tuple": ("Oslo", 14.5),
        "generator": (n * n for n in range(3)),
        "time": at,
        "binary": b"\x00\x01",
        "text_bytes": b"caf\xc3\xa9",
        "nested": {"when": dt.date(2025, 8, 5), "ids": {uuid.UUID(int=1)}, "amount": decimal.Decimal("1.10")},
    }

    def fetch(kind: str) -> Any:
        """Fetch something."""
        return results[kind]

    router.queue(Text(tool_calls=[ToolCall("fetch", {"kind": k}, id=k) for k in results]), "ok")
    Chat("m/m", **connect)("fetch all", tools=[fetch])
    assert tool_messages(router.chat_requests[1]) == {
        "model": '{"city": "Oslo", "celsius": 14.5}',
        "record": '{"city": "Oslo", "at": "2025-08-05 07:45:00"}',
        "set": "[1, 2, 3]",
        "tuple": '["Oslo", 14.5]',
        "generator": "[0, 1, 4]",
        "time": "2025-08-05 07:45:00",
        "binary": "AAE=",
        "text_bytes": "café",
        "nested": '{"when": "2025-08-05", "ids": ["00000000-0000-0000-0000-000000000001"], "amount": "1.10"}',
    }


def test_a_generator_that_fails_is_an_error_for_the_model(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def lines() -> Any:
        """Read lines."""
        yield "first"
        raise OSError("disk gone")

    router.queue(Text(tool_calls=[ToolCall("lines", {}, id="l")]), "ok")
    Chat("m/m", **connect)("read", tools=[lines])
    assert tool_messages(router.chat_requests[1]) == {"l": "Error: OSError: disk gone"}


# ------------------------------------------------------------------------------------ the summary after max_steps


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def test_summary_that_calls_a_tool_instead_is_asked_again_without_tools(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """With ``tool_choice="none"`` some models still call a tool and say nothing: the user got ``''``."""
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"}, id="w1")]),
        Text("", tool_calls=[ToolCall("get_weather", {"city": "Tokyo"}, id="w2")]),
        Text("Paris is sunny; Tokyo is left to check."),
    )
    chat = Chat("m/m", tool_choice="auto", parallel_tool_calls=True, **connect)
    answer = chat("Weather in Paris and Tokyo?", tools=[get_weather], max_steps=1)
    assert answer == "Paris is sunny; Tokyo is left to check."
    _, summary, again = router.chat_requests
    assert summary["tool_choice"] == "none"
    assert "tools" in summary
    assert "tools" not in again
    assert "tool_choice" not in again
    assert "parallel_tool_calls" not in again
    assert again["messages"] == summary["messages"]  # the ignored reply is not part of the conversation
    assert again["messages"][-1] == {"role": "user", "content": FINAL_PROMPT}
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert chat.history[-1] == {"role": "assistant", "content": answer}
    assert chat.pending_tool_calls == []
    assert [e.step for e in chat.ledger] == [1, 2, 2]  # every request is accounted, the ignored one too


def test_async_summary_is_asked_again_too(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    import asyncio

    from irouter import AsyncChat

    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Text(tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})]),
        Text("Summary."),
    )

    async def main() -> str:
        return str(await AsyncChat("m/m", **connect)("go", tools=[get_weather], max_steps=1))

    assert asyncio.run(main()) == "Summary."
    assert "tools" not in router.chat_requests[-1]


@pytest.mark.parametrize("stream", [False, True])
def test_streamed_summary_is_asked_again(router: OpenRouterDouble, connect: dict[str, str], stream: bool) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        Text(tool_calls=[ToolCall("get_weather", {"city": "Tokyo"})]),
        Text("Summary."),
    )
    chat = Chat("m/m", **connect)
    answer = (
        "".join(chat("go", tools=[get_weather], max_steps=1, stream=True))
        if stream
        else chat("go", tools=[get_weather], max_steps=1)
    )
    assert answer == "Summary."
    assert len(router.chat_requests) == 3
    assert "tools" not in router.chat_requests[-1]
    assert chat.history[-1] == {"role": "assistant", "content": "Summary."}


def test_the_double_fills_formatted_parameters_by_itself(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """With nothing queued the double calls every tool with example arguments made from its schema: those fit."""
    seen: list[Any] = []

    def log(
        when: dt.datetime,
        at: dt.time,
        wait: dt.timedelta,
        ticket: uuid.UUID,
        amount: decimal.Decimal,
        where: Path,
        data: bytes,
    ) -> str:
        """Log."""
        seen.extend([when, at, wait, ticket, amount, where, data])
        return "logged"

    answer = Chat("m/m", **connect)("log", tools=[log])
    assert answer == "You said: log Tool results: logged"
    assert [type(v) for v in seen] == [
        dt.datetime,
        dt.time,
        dt.timedelta,
        uuid.UUID,
        decimal.Decimal,
        type(Path()),
        bytes,
    ]


def test_async_drivers_pass_positional_only_and_typed_arguments(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    import asyncio

    from irouter import AsyncChat

    async def later(when: dt.date, /) -> dt.date:
        """A day later."""
        return when + dt.timedelta(days=1)

    def earlier(when: dt.date, /) -> dt.date:
        """A day earlier."""
        return when - dt.timedelta(days=1)

    router.queue(
        Text(
            tool_calls=[
                ToolCall("later", {"when": "2025-08-05"}, id="l"),
                ToolCall("earlier", {"when": "2025-08-05"}, id="e"),
                ToolCall("sqrt", {"x": 2.25}, id="s"),
            ]
        ),
        "ok",
    )

    async def main() -> None:
        await AsyncChat("m/m", **connect)("dates", tools=[later, earlier, math.sqrt])

    asyncio.run(main())
    assert tool_messages(router.chat_requests[1]) == {"l": "2025-08-06", "e": "2025-08-04", "s": "1.5"}


class Frame:
    """A class irouter cannot build from JSON (think of a DataFrame)."""


def test_a_parameter_no_json_can_fill_is_refused_before_any_request(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    """It used to get an "anything" schema, and then every value the model sent was refused."""

    def summarise(frame: Frame) -> str:
        """Summarise a table."""
        return "summary"

    with pytest.raises(TypeError, match=r"parameter 'frame' is typed Frame, which irouter cannot describe"):
        Chat("m/m", **connect)("summarise", tools=[summarise])
    assert router.requests == []


def test_a_parameter_no_json_can_fill_is_left_out_when_it_has_a_default(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    default = Frame()

    def summarise(rows: int, frame: Frame = default) -> str:
        """Summarise a table."""
        return f"{rows} rows, default frame: {frame is default}"

    router.queue(Text(tool_calls=[ToolCall("summarise", {"rows": 3}, id="s")]), "ok")
    Chat("m/m", **connect)("summarise", tools=[summarise])
    assert list(router.chat_requests[0]["tools"][0]["function"]["parameters"]["properties"]) == ["rows"]
    assert tool_messages(router.chat_requests[1]) == {"s": "3 rows, default frame: True"}
