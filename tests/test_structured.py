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

    with pytest.raises(TypeError, match="cannot be described as JSON Schema; pass a pydantic model, dataclass or"):
        Chat("m/m", **connect)("x", response_format=Plain)
    assert router.requests == []


# ------------------------------------------------------------------------------------ generic aliases and unions


def test_list_of_a_model_is_wrapped_and_unwrapped(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """``list[City]`` failed deep in the encoder ("GenericAlias is not JSON serializable"); now it is sent inside
    an object (the root of a json_schema must be one) and the list comes back."""
    paris = {"name": "Paris", "population": 2100000, "landmarks": ["Louvre"]}
    rome = {"name": "Rome", "population": 2800000, "landmarks": []}
    router.queue(json.dumps({"response": [paris, rome]}), json.dumps([rome]))
    chat = Chat("m/m", **connect)
    cities = chat("Two capitals", response_format=list[City])
    assert cities == [City(**paris), City(**rome)]
    sent = router.chat_requests[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "list_City"
    assert sent["json_schema"]["strict"] is True
    schema = sent["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["response"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["response"]["type"] == "array"
    assert schema["properties"]["response"]["items"]["properties"]["name"] == {"type": "string", "title": "Name"}
    assert chat.history[-1]["content"] == json.dumps({"response": [paris, rome]})  # history keeps the JSON text
    assert chat("One more", response_format=list[City]) == [City(**rome)]  # a reply without the wrapper is taken too


def test_default_double_reply_fits_the_wrapped_schema(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """The double answers with an example of the schema it was sent: the wrapper round-trips end to end."""
    value = Call("m/m", **connect)("numbers", response_format=dict[str, list[int]])
    assert isinstance(value, dict)
    assert all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in value.values())


def test_unions_optionals_and_literals(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(
        '{"response": {"city": "Oslo", "celsius": 3}}',
        '{"response": null}',
        '{"response": "yes"}',
        '{"response": 42}',
    )
    ask = Call("m/m", **connect)
    assert ask("w", response_format=Weather | Movie) == Weather("Oslo", 3.0)
    assert ask("w", response_format=Weather | None) is None
    from typing import Literal

    assert ask("y/n", response_format=Literal["yes", "no"]) == "yes"
    assert ask("n", response_format=int) == 42
    names = [r["response_format"]["json_schema"]["name"] for r in router.chat_requests]
    assert names == ["Weather_Movie", "Weather_None", "Literal_yes_no", "int"]
    union = router.chat_requests[0]["response_format"]["json_schema"]["schema"]["properties"]["response"]
    assert [s["title"] for s in union["anyOf"]] == ["Weather", "Movie"]


def test_a_wrapped_reply_that_does_not_fit_raises(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue('{"response": [1, 2]}')
    with pytest.raises(irouter.StructuredOutputError, match=r"does not fit list\[City\]") as info:
        Chat("m/m", **connect)("cities", response_format=list[City])
    assert info.value.target == list[City]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (object, "cannot be described as JSON Schema"),
        ("json_object", "must be a type"),
        (City(name="x", population=1, landmarks=[]), "must be a type"),
    ],
)
def test_what_cannot_be_described_is_refused_up_front(
    router: OpenRouterDouble, connect: dict[str, str], bad: object, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        Chat("m/m", **connect)("x", response_format=bad)
    with pytest.raises(TypeError, match=message):
        Chat("m/m", response_format=bad, **connect)
    assert router.requests == []


def test_a_root_model_of_a_list_is_wrapped_too(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    from pydantic import RootModel

    Scores = RootModel[list[int]]
    router.queue('{"response": [3, 1]}')
    assert Call("m/m", **connect)("scores", response_format=Scores) == Scores([3, 1])
    schema = router.chat_requests[-1]["response_format"]["json_schema"]["schema"]
    assert schema["type"] == "object"
    assert schema["properties"]["response"]["type"] == "array"
