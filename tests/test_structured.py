"""Structured output over HTTP: a type as response_format, validated instances back, clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypedDict

import pytest
from pydantic import BaseModel

import irouter
from irouter import Call, Chat
from irouter.testing import OpenRouterDouble, Text


class City(BaseModel):
    name: str
    population: int
    landmarks: list[str]


@dataclass
class Weather:
    city: str
    celsius: float


class Movie(TypedDict):
    title: str
    year: int


class Loose(BaseModel):
    name: str
    note: str = ""


def test_pydantic_model(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    text = '{"name": "Paris", "population": 2100000, "landmarks": ["Eiffel Tower"]}'
    router.queue(text)
    chat = Chat("openai/gpt-4o-mini", **connect)
    city = chat("Tell me about Paris", response_format=City)
    assert city == City(name="Paris", population=2100000, landmarks=["Eiffel Tower"])
    assert chat.history[-1] == {"role": "assistant", "content": text}  # history keeps the JSON text
    sent = router.chat_requests[-1]["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {
            "name": "City",
            "strict": True,
            "schema": {
                "type": "object",
                "title": "City",
                "properties": {
                    "name": {"type": "string", "title": "Name"},
                    "population": {"type": "integer", "title": "Population"},
                    "landmarks": {"type": "array", "items": {"type": "string"}, "title": "Landmarks"},
                },
                "required": ["name", "population", "landmarks"],
                "additionalProperties": False,
            },
        },
    }


def test_dataclass_typeddict_and_non_strict(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    ask = Call("m/m", **connect)
    router.queue('{"city": "Oslo", "celsius": 3}', '```json\n{"title": "Alien", "year": 1979}\n```', '{"name": "x"}')
    assert ask("weather", response_format=Weather) == Weather("Oslo", 3.0)
    assert ask("movie", response_format=Movie) == {"title": "Alien", "year": 1979}
    assert ask("loose", response_format=Loose) == Loose(name="x")
    formats = [r["response_format"]["json_schema"] for r in router.chat_requests]
    assert [f["name"] for f in formats] == ["Weather", "Movie", "Loose"]
    assert [f["strict"] for f in formats] == [True, True, False]  # a default makes strict impossible
    assert formats[0]["schema"]["required"] == ["city", "celsius"]


def test_dict_response_format_passes_through(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    fmt = {"type": "json_object"}
    router.queue('{"a": 1}')
    assert Chat("m/m", **connect)("json please", response_format=fmt) == '{"a": 1}'
    assert router.chat_requests[-1]["response_format"] == fmt


def test_invalid_reply_raises_with_the_text(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat("m/m", **connect)
    router.queue("Sure! Paris is lovely.", '{"name": "Paris", "population": "many", "landmarks": []}')
    with pytest.raises(irouter.StructuredOutputError, match="not valid JSON for City") as info:
        chat("Paris", response_format=City)
    assert info.value.text == "Sure! Paris is lovely."
    assert info.value.model == "m/m"
    assert info.value.target is City
    with pytest.raises(irouter.StructuredOutputError, match="does not fit City") as info:
        chat("Paris", response_format=City)
    assert json.loads(info.value.text)["population"] == "many"
    assert len(chat.history) == 1  # a failed turn leaves history as it was
    assert chat.usage["total_tokens"] > 0  # but the tokens were spent


def test_several_models(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue('{"city": "Rome", "celsius": 25.5}', model="a/a")
    router.queue('{"city": "Rome", "celsius": 24}', model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    assert chat("Rome?", response_format=Weather) == {"a/a": Weather("Rome", 25.5), "b/b": Weather("Rome", 24.0)}
    router.queue('{"city": "Rome", "celsius": 25.5}', model="a/a")
    router.queue("no idea", model="b/b")
    with pytest.raises(irouter.MultiModelError) as info:
        chat("Rome again?", response_format=Weather)
    assert info.value.answers == {"a/a": Weather("Rome", 25.5)}
    assert isinstance(info.value.errors["b/b"], irouter.StructuredOutputError)


def test_structured_output_after_tool_steps(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    from irouter.testing import ToolCall

    def temperature(city: str) -> float:
        """Temperature in a city."""
        return 21.5

    router.queue(Text(tool_calls=[ToolCall("temperature", {"city": "Lima"})]), '{"city": "Lima", "celsius": 21.5}')
    assert Chat("m/m", **connect)("Lima?", tools=[temperature], response_format=Weather) == Weather("Lima", 21.5)


def test_a_plain_class_is_refused(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    class Plain:
        pass

    with pytest.raises(TypeError, match="pydantic model, dataclass or TypedDict"):
        Chat("m/m", **connect)("x", response_format=Plain)
    assert router.requests == []
