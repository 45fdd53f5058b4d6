"""Type hints -> JSON Schema, JSON arguments -> annotated Python values, tool schemas, structured output.

Pure unit and property tests: no HTTP. Annotations here are real objects (no ``from __future__ import
annotations`` in this file); string annotations are exercised through a small module built at import time.
"""

import asyncio
import base64
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import inspect
import itertools
import json
import pathlib
import sys
import types
import typing
import uuid
from typing import Annotated, Any, Literal, NamedTuple, Optional, TypedDict, Union

import jsonschema
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

import irouter
from irouter._schema import ConversionError, convert, to_json_data, type_schema
from irouter._structured import parser_for, response_format_for
from irouter.tools import Tool, Toolbox, error_text, function_schema, result_text, split_docstring

# --------------------------------------------------------------------------------------------- shared types


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.Enum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Point:
    x: float
    y: float


@dataclasses.dataclass
class Place:
    """A named place.

    More words that are not part of the description.
    """

    name: str
    where: Point
    tags: list[str] = dataclasses.field(default_factory=list)
    zoom: int = 3


@dataclasses.dataclass
class Answer:
    text: str
    score: int


class Movie(TypedDict):
    title: str
    year: int


class MovieFilter(TypedDict, total=False):
    genre: str
    after: int


class Address(pydantic.BaseModel):
    street: str
    city: str


class Person(pydantic.BaseModel):
    name: str
    age: int
    address: Address


class Settings(pydantic.BaseModel):
    verbose: bool
    retries: int = 2


INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
NULL = {"type": "null"}

POINT_SCHEMA = {
    "type": "object",
    "title": "Point",
    "properties": {"x": NUMBER, "y": NUMBER},
    "required": ["x", "y"],
    "additionalProperties": False,
}
PLACE_SCHEMA = {
    "type": "object",
    "title": "Place",
    "properties": {
        "name": STRING,
        "where": POINT_SCHEMA,
        "tags": {"type": "array", "items": STRING},
        "zoom": INTEGER,
    },
    "required": ["name", "where"],
    "additionalProperties": False,
    "description": "A named place.",
}
ADDRESS_SCHEMA = {
    "properties": {
        "street": {"title": "Street", "type": "string"},
        "city": {"title": "City", "type": "string"},
    },
    "required": ["street", "city"],
    "title": "Address",
    "type": "object",
}
PERSON_SCHEMA = {
    "properties": {
        "name": {"title": "Name", "type": "string"},
        "age": {"title": "Age", "type": "integer"},
        "address": {"$ref": "#/$defs/Address"},
    },
    "required": ["name", "age", "address"],
    "title": "Person",
    "type": "object",
}
ANN = Person(name="Ann", age=41, address=Address(street="1 Main St", city="Oslo"))

_NOT_JSON = object()


def params(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, **extra}


def check_schema(schema: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(schema)


# --------------------------------------------------------------------------------------------- docstrings

REST_DOC = """Get the weather forecast.

    :param city: The city name,
        with its country.
    :param int days: How many days ahead.
    :type days: int
    :returns: The forecast.
    :rtype: str
    """

GOOGLE_DOC = """Book a flight.

    Args:
        origin (str): Where from,
            as an IATA code.

        destination: Where to.
        *extras: Ignored.

    Returns:
        dict: The booking.

    Raises:
        ValueError: When sold out.
    """

NUMPY_DOC = """Convert a temperature.

    Parameters
    ----------
    value : float
        The temperature
        to convert.
    unit : str, optional
        Target unit.

    Returns
    -------
    float
        The converted temperature.
    """


def test_split_docstring_rest() -> None:
    assert split_docstring(REST_DOC) == (
        "Get the weather forecast.",
        {"city": "The city name, with its country.", "days": "How many days ahead."},
    )


def test_split_docstring_google() -> None:
    assert split_docstring(GOOGLE_DOC) == (
        "Book a flight.",
        {"origin": "Where from, as an IATA code.", "destination": "Where to.", "extras": "Ignored."},
    )


def test_split_docstring_google_sections_without_blank_lines() -> None:
    doc = """Add.

    Args:
        a: First.
        b: Second,
            continued.
    Returns:
        The sum.
    """
    assert split_docstring(doc) == ("Add.", {"a": "First.", "b": "Second, continued."})


def test_split_docstring_numpy() -> None:
    assert split_docstring(NUMPY_DOC) == (
        "Convert a temperature.",
        {"value": "The temperature to convert.", "unit": "Target unit."},
    )


def test_split_docstring_plain_and_missing() -> None:
    assert split_docstring(None) == ("", {})
    assert split_docstring("") == ("", {})
    assert split_docstring("   Just a summary.\n   ") == ("Just a summary.", {})


def test_rest_docstring_tool() -> None:
    def forecast(city: str, days: int = 1) -> str:
        return city

    forecast.__doc__ = REST_DOC
    assert Tool(forecast).schema == {
        "type": "function",
        "function": {
            "name": "forecast",
            "parameters": params(
                {
                    "city": {"type": "string", "description": "The city name, with its country."},
                    "days": {"type": "integer", "description": "How many days ahead.", "default": 1},
                },
                ["city"],
            ),
            "description": "Get the weather forecast.",
        },
    }


def test_google_docstring_tool() -> None:
    def book(origin: str, destination: str, *extras: str) -> dict[str, str]:
        return {}

    book.__doc__ = GOOGLE_DOC
    tool = Tool(book)
    assert tool.name == "book"
    assert tool.description == "Book a flight."
    assert tool.parameters == params(
        {
            "origin": {"type": "string", "description": "Where from, as an IATA code."},
            "destination": {"type": "string", "description": "Where to."},
        },
        ["origin", "destination"],
    )


def test_numpy_docstring_tool() -> None:
    def convert_temperature(value: float, unit: str = "C") -> float:
        return value

    convert_temperature.__doc__ = NUMPY_DOC
    tool = Tool(convert_temperature)
    assert tool.description == "Convert a temperature."
    assert tool.parameters == params(
        {
            "value": {"type": "number", "description": "The temperature to convert."},
            "unit": {"type": "string", "description": "Target unit.", "default": "C"},
        },
        ["value"],
    )


def test_no_docstring_means_no_description() -> None:
    def ping(host: str) -> bool:
        return True

    tool = Tool(ping)
    assert tool.description == ""
    assert tool.schema == {
        "type": "function",
        "function": {"name": "ping", "parameters": params({"host": STRING}, ["host"])},
    }
    assert function_schema(ping) == tool.schema


def test_explicit_name_and_description_win() -> None:
    def ping(host: str) -> bool:
        """Ping a host."""
        return True

    tool = Tool(ping, name="check-host", description="Is it up?")
    assert tool.schema["function"]["name"] == "check-host"
    assert tool.schema["function"]["description"] == "Is it up?"
    assert repr(tool) == "Tool('check-host')"


# --------------------------------------------------------------------------------------------- types


def test_scalar_and_container_types() -> None:
    def f(
        s: str,
        i: int,
        x: float,
        b: bool,
        n: None,
        xs: list[int],
        m: dict[str, float],
        pair: tuple[str, int],
        many: tuple[int, ...],
        nested: list[dict[str, list[bool]]],
    ) -> None:
        pass

    tool = Tool(f)
    assert tool.parameters == params(
        {
            "s": STRING,
            "i": INTEGER,
            "x": NUMBER,
            "b": BOOLEAN,
            "n": NULL,
            "xs": {"type": "array", "items": INTEGER},
            "m": {"type": "object", "additionalProperties": NUMBER},
            "pair": {"type": "array", "prefixItems": [STRING, INTEGER], "minItems": 2, "maxItems": 2},
            "many": {"type": "array", "items": INTEGER},
            "nested": {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "array", "items": BOOLEAN}},
            },
        },
        ["s", "i", "x", "b", "n", "xs", "m", "pair", "many", "nested"],
    )
    check_schema(tool.parameters)


def test_optional_union_literal_enum() -> None:
    def f(
        a: Optional[int],  # noqa: UP045
        b: str | None,
        c: Union[int, str],  # noqa: UP007
        d: Literal["asc", "desc"],
        e: Literal[1, "one", None],
        color: Color,
        level: Level,
    ) -> None:
        pass

    assert Tool(f).parameters == params(
        {
            "a": {"anyOf": [INTEGER, NULL]},
            "b": {"anyOf": [STRING, NULL]},
            "c": {"anyOf": [INTEGER, STRING]},
            "d": {"type": "string", "enum": ["asc", "desc"]},
            "e": {"enum": [1, "one", None]},
            "color": {"type": "string", "enum": ["red", "green"]},
            "level": {"type": "integer", "enum": [1, 2]},
        },
        ["a", "b", "c", "d", "e", "color", "level"],
    )


def test_datetime_date_and_annotated() -> None:
    def f(when: dt.datetime, day: dt.date, count: Annotated[int, "How many to fetch"]) -> None:
        """Fetch.

        Args:
            count: Ignored: the Annotated note wins.
            day: The day.
        """

    assert Tool(f).parameters == params(
        {
            "when": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date", "description": "The day."},
            "count": {"type": "integer", "description": "How many to fetch"},
        },
        ["when", "day", "count"],
    )


def test_defaults_and_unannotated_parameters() -> None:
    def f(a, b=2, c=_NOT_JSON, d: str = "x", e: int | None = None, f: bool = False, g=None):  # type: ignore[no-untyped-def]
        """Do it.

        :param a: Anything at all.
        :param c: A sentinel.
        """

    assert Tool(f).parameters == params(
        {
            "a": {"description": "Anything at all."},
            "b": {"default": 2},
            "c": {"description": "A sentinel."},
            "d": {"type": "string", "default": "x"},
            "e": {"anyOf": [INTEGER, NULL], "default": None},
            "f": {"type": "boolean", "default": False},
            "g": {"default": None},
        },
        ["a"],
    )


def test_dataclass_parameters() -> None:
    def visit(place: Place, stops: list[Point]) -> None:
        pass

    tool = Tool(visit)
    assert tool.parameters == params(
        {"place": PLACE_SCHEMA, "stops": {"type": "array", "items": POINT_SCHEMA}},
        ["place", "stops"],
    )
    check_schema(tool.parameters)
    jsonschema.validate({"place": {"name": "Home", "where": {"x": 1, "y": 2}}, "stops": []}, tool.parameters)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"place": {"name": "Home", "where": {"x": 1, "y": 2}, "extra": 1}, "stops": []}, tool.parameters
        )


def test_dataclass_fields_not_in_init_are_left_out() -> None:
    @dataclasses.dataclass
    class Counter:
        start: int
        seen: int = dataclasses.field(init=False, default=0)

    assert type_schema(Counter) == {
        "type": "object",
        "title": "Counter",
        "properties": {"start": INTEGER},
        "required": ["start"],
        "additionalProperties": False,
    }
    assert convert({"start": 4}, Counter) == Counter(4)


def test_typeddict_parameters() -> None:
    def search(movie: Movie, where: MovieFilter) -> None:
        pass

    assert Tool(search).parameters == params(
        {
            "movie": {
                "type": "object",
                "title": "Movie",
                "properties": {"title": STRING, "year": INTEGER},
                "required": ["title", "year"],
                "additionalProperties": False,
            },
            "where": {
                "type": "object",
                "title": "MovieFilter",
                "properties": {"genre": STRING, "after": INTEGER},
                "required": [],
                "additionalProperties": False,
            },
        },
        ["movie", "where"],
    )


@pytest.mark.skipif(sys.version_info < (3, 11), reason="typing.NotRequired is new in 3.11")
def test_typeddict_not_required_keys() -> None:
    from typing import NotRequired, Required

    class Query(TypedDict, total=False):
        text: Required[str]
        limit: NotRequired[int]

    assert type_schema(Query) == {
        "type": "object",
        "title": "Query",
        "properties": {"text": STRING, "limit": INTEGER},
        "required": ["text"],
        "additionalProperties": False,
    }
    assert convert({"text": "hi", "limit": 3}, Query) == {"text": "hi", "limit": 3}
    with pytest.raises(ConversionError, match=r"q\.limit must be an integer"):
        convert({"text": "hi", "limit": "3"}, Query, "q")


def test_pydantic_parameters_hoist_defs() -> None:
    def register(person: Person, others: list[Person], settings: Settings) -> None:
        """Register someone.

        Args:
            person: Who.
        """

    tool = Tool(register)
    assert tool.parameters == {
        "type": "object",
        "properties": {
            "person": {**PERSON_SCHEMA, "description": "Who."},
            "others": {"type": "array", "items": PERSON_SCHEMA},
            "settings": {
                "properties": {
                    "verbose": {"title": "Verbose", "type": "boolean"},
                    "retries": {"default": 2, "title": "Retries", "type": "integer"},
                },
                "required": ["verbose"],
                "title": "Settings",
                "type": "object",
            },
        },
        "required": ["person", "others", "settings"],
        "$defs": {"Address": ADDRESS_SCHEMA},
    }
    check_schema(tool.parameters)
    good = {"person": ANN.model_dump(), "others": [ANN.model_dump()], "settings": {"verbose": True}}
    jsonschema.validate(good, tool.parameters)  # the $refs resolve against the hoisted $defs
    bad = {**good, "others": [{"name": "Bo", "age": 3, "address": {"street": "x"}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, tool.parameters)


def test_type_schema_of_pydantic_model_keeps_defs_at_root() -> None:
    assert type_schema(Person) == {**PERSON_SCHEMA, "$defs": {"Address": ADDRESS_SCHEMA}}
    assert type_schema(list[Person]) == {
        "type": "array",
        "items": PERSON_SCHEMA,
        "$defs": {"Address": ADDRESS_SCHEMA},
    }


def test_recursive_dataclass_stays_finite() -> None:
    @dataclasses.dataclass
    class Node:
        value: int
        children: "list[Node]"

    globals()["Node"] = Node  # the string annotation resolves through the module
    try:
        assert type_schema(Node) == {
            "type": "object",
            "title": "Node",
            "properties": {"value": INTEGER, "children": {"type": "array", "items": {}}},
            "required": ["value", "children"],
            "additionalProperties": False,
        }
        tree = convert({"value": 1, "children": [{"value": 2, "children": []}]}, Node)
        assert tree == Node(1, [Node(2, [])])
    finally:
        del globals()["Node"]


# --------------------------------------------------------------------------------------------- callables


class Forecaster:
    def __init__(self, unit: str) -> None:
        self.unit = unit

    def lookup(self, city: str, days: int = 1) -> str:
        """Look up the weather.

        :param city: The city.
        """
        return f"{city}: {days} days in {self.unit}"


class Adder:
    """Adds numbers (the class docstring)."""

    def __call__(self, a: int, b: int = 1) -> int:
        """Add two numbers."""
        return a + b


class AsyncDoubler:
    async def __call__(self, n: int) -> int:
        await asyncio.sleep(0)
        return 2 * n


def test_bound_method_excludes_self() -> None:
    tool = Tool(Forecaster("C").lookup)
    assert tool.name == "lookup"
    assert tool.description == "Look up the weather."
    assert tool.parameters == params(
        {"city": {"type": "string", "description": "The city."}, "days": {"type": "integer", "default": 1}},
        ["city"],
    )
    assert tool(**tool.bind({"city": "Oslo", "days": 2})) == "Oslo: 2 days in C"


def test_partial_excludes_positionally_bound_arguments() -> None:
    def area(width: float, height: float, unit: str = "m", scale: int = 1) -> str:
        """Area of a rectangle."""
        return f"{width * height * scale} {unit}2"

    # positionally bound arguments are gone; keyword-bound ones stay as overridable defaults
    tool = Tool(functools.partial(area, 2.0, unit="cm"))
    assert tool.name == "area"
    assert tool.description == "Area of a rectangle."
    assert tool.parameters == params(
        {"height": NUMBER, "unit": {"type": "string", "default": "cm"}, "scale": {"type": "integer", "default": 1}},
        ["height"],
    )
    assert tool(**tool.bind({"height": 3})) == "6.0 cm2"
    assert tool(**tool.bind({"height": 3, "unit": "km"})) == "6.0 km2"
    with pytest.raises(ConversionError, match=r"unexpected argument\(s\) \['width'\]"):
        tool.bind({"height": 3, "width": 1})

    nested = Tool(functools.partial(functools.partial(area, 3.0), 2.0))
    assert nested.parameters == params(
        {"unit": {"type": "string", "default": "m"}, "scale": {"type": "integer", "default": 1}}, []
    )
    assert nested(**nested.bind({"scale": 2})) == "12.0 m2"


def test_async_function() -> None:
    async def fetch(url: str) -> str:
        """Fetch a page."""
        await asyncio.sleep(0)
        return f"<{url}>"

    def sync(url: str) -> str:
        return url

    tool = Tool(fetch)
    assert tool.is_async is True
    assert Tool(sync).is_async is False
    assert tool.schema == {
        "type": "function",
        "function": {"name": "fetch", "parameters": params({"url": STRING}, ["url"]), "description": "Fetch a page."},
    }
    assert tool(url="x") == "<x>"


def test_async_function_inside_a_running_loop() -> None:
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return url.upper()

    async def main() -> str:
        return Tool(fetch)(url="abc")

    assert asyncio.run(main()) == "ABC"


def test_callable_objects() -> None:
    tool = Tool(Adder())
    assert tool.name == "Adder"
    assert tool.description == "Add two numbers."
    assert tool.is_async is False
    assert tool.parameters == params({"a": INTEGER, "b": {"type": "integer", "default": 1}}, ["a"])
    assert tool(**tool.bind({"a": 2, "b": 5})) == 7

    doubler = Tool(AsyncDoubler())
    assert doubler.name == "AsyncDoubler"
    assert doubler.is_async is True
    assert doubler.parameters == params({"n": INTEGER}, ["n"])
    assert doubler(**doubler.bind({"n": 21})) == 42


_FUTURE_SOURCE = '''
from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass
class Stop:
    name: str
    at: datetime.datetime | None = None


@dataclasses.dataclass
class Route:
    stops: list[Stop]
    loop: bool


def plan(route: Route, budget: int | None = None, tags: tuple[str, ...] = ()) -> str:
    """Plan a route.

    Args:
        route: The route.
    """
    return "ok"
'''


@pytest.fixture
def future_module() -> Any:
    module = types.ModuleType("irouter_test_future_annotations")
    sys.modules[module.__name__] = module
    try:
        exec(compile(_FUTURE_SOURCE, "<future>", "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules[module.__name__]


def test_string_annotations(future_module: Any) -> None:
    assert isinstance(future_module.plan.__annotations__["route"], str)
    tool = Tool(future_module.plan)
    stop = {
        "type": "object",
        "title": "Stop",
        "properties": {"name": STRING, "at": {"anyOf": [{"type": "string", "format": "date-time"}, NULL]}},
        "required": ["name"],
        "additionalProperties": False,
    }
    assert tool.parameters == params(
        {
            "route": {
                "type": "object",
                "title": "Route",
                "properties": {"stops": {"type": "array", "items": stop}, "loop": BOOLEAN},
                "required": ["stops", "loop"],
                "additionalProperties": False,
                "description": "The route.",
            },
            "budget": {"anyOf": [INTEGER, NULL], "default": None},
            "tags": {"type": "array", "items": STRING, "default": ()},
        },
        ["route"],
    )
    kwargs = tool.bind({"route": {"stops": [{"name": "A", "at": "2024-05-01T08:00:00Z"}], "loop": False}})
    route = kwargs["route"]
    assert isinstance(route, future_module.Route)
    assert route.stops == [future_module.Stop("A", dt.datetime(2024, 5, 1, 8, tzinfo=dt.timezone.utc))]


# --------------------------------------------------------------------------------------------- caller mistakes


def test_not_callable() -> None:
    with pytest.raises(TypeError, match="must be callable"):
        Tool(3)  # type: ignore[arg-type]


def test_invalid_names() -> None:
    with pytest.raises(ValueError, match=r"'<lambda>'.*Tool\(func, name="):
        Tool(lambda: 1)
    assert Tool(lambda: 1, name="one").name == "one"
    with pytest.raises(ValueError, match="1-64"):
        Tool(lambda: 1, name="x" * 65)
    assert Tool(lambda: 1, name="x" * 64).name == "x" * 64
    for bad in ("has space", "dot.ted", "ümlaut", "trailing\n"):
        with pytest.raises(ValueError, match="not allowed"):
            Tool(lambda: 1, name=bad)


def test_toolbox_mistakes() -> None:
    def f(x: int) -> int:
        return x

    with pytest.raises(ValueError, match=r"Two tools are named 'f'.*Tool\(func, name=\.\.\.\)"):
        Toolbox([f, f])
    with pytest.raises(ValueError, match="Two tools"):
        Toolbox([f, Tool(f)])
    for bad in (f, "f", {"type": "function"}, 3):
        with pytest.raises(TypeError, match="tools must be a list"):
            Toolbox(bad)  # type: ignore[arg-type]


def test_toolbox_mixes_tools_and_schema_dicts() -> None:
    def f(x: int) -> int:
        return x

    server_tool = {"type": "openrouter:web_search", "parameters": {"max_results": 3}}
    box = Toolbox([f, server_tool, Tool(f, name="g")])
    assert box.schemas == [Tool(f).schema, server_tool, Tool(f, name="g").schema]
    assert list(box.local) == ["f", "g"]
    assert box
    assert not Toolbox(None)
    assert not Toolbox([])


# --------------------------------------------------------------------------------------------- bind


def test_bind_converts_to_annotated_types() -> None:
    def f(
        place: Place,
        person: Person,
        color: Color,
        level: Level,
        pair: tuple[str, int],
        when: dt.datetime,
        day: dt.date,
        places: list[Place],
        grid: dict[str, list[Point]],
        ratio: float,
        count: int,
        maybe: int | None = None,
    ) -> None:
        pass

    kwargs = Tool(f).bind(
        {
            "place": {"name": "Home", "where": {"x": 1, "y": 2.5}},
            "person": ANN.model_dump(),
            "color": "green",
            "level": 2,
            "pair": ["a", 1],
            "when": "2024-05-01T12:30:00Z",
            "day": "2024-05-01",
            "places": [{"name": "A", "where": {"x": 0, "y": 0}, "tags": ["t"], "zoom": 9}],
            "grid": {"row": [{"x": 1, "y": 1}]},
            "ratio": 2,
            "count": 3.0,
        }
    )
    assert kwargs == {
        "place": Place("Home", Point(1.0, 2.5)),
        "person": ANN,
        "color": Color.GREEN,
        "level": Level.HIGH,
        "pair": ("a", 1),
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 5, 1),
        "places": [Place("A", Point(0.0, 0.0), ["t"], 9)],
        "grid": {"row": [Point(1.0, 1.0)]},
        "ratio": 2.0,
        "count": 3,
    }
    assert type(kwargs["place"]) is Place
    assert type(kwargs["place"].where) is Point
    assert type(kwargs["person"]) is Person
    assert type(kwargs["person"].address) is Address
    assert kwargs["color"] is Color.GREEN
    assert type(kwargs["pair"]) is tuple
    assert type(kwargs["ratio"]) is float
    assert type(kwargs["count"]) is int
    assert type(kwargs["places"][0]) is Place
    assert "maybe" not in kwargs


def test_bind_typeddict_and_optional() -> None:
    def f(movie: Movie, where: MovieFilter, maybe: Optional[Point] = None) -> None:  # noqa: UP045
        pass

    tool = Tool(f)
    assert tool.bind({"movie": {"title": "Up", "year": 2009}, "where": {}, "maybe": None}) == {
        "movie": {"title": "Up", "year": 2009},
        "where": {},
        "maybe": None,
    }
    assert tool.bind({"movie": {"title": "Up", "year": 2009}, "where": {"genre": "x"}, "maybe": {"x": 1, "y": 2}})[
        "maybe"
    ] == Point(1.0, 2.0)


def test_bind_with_var_keyword_accepts_anything() -> None:
    def f(a: int, **rest: Any) -> None:
        pass

    assert Tool(f).bind({"a": 1, "b": [1], "c": {"d": None}}) == {"a": 1, "b": [1], "c": {"d": None}}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"count": 1, "zzz": 2}, r"^unexpected argument\(s\) \['zzz'\]; f takes count, flag, pair, places, m, color"),
        ({}, r"^missing required argument\(s\) \['count'\]$"),
        ({"count": True}, r"^count must be an integer, got True$"),
        ({"count": "3"}, r"^count must be an integer, got '3'$"),
        ({"count": 1.5}, r"^count must be an integer, got 1\.5$"),
        ({"count": None}, r"^count must be an integer, got None$"),
        ({"count": 1, "flag": 1}, r"^flag must be a boolean, got 1$"),
        ({"count": 1, "pair": ["a"]}, r"^pair must have exactly 2 items, got 1$"),
        ({"count": 1, "pair": ["a", "b"]}, r"^pair\[1\] must be an integer, got 'b'$"),
        ({"count": 1, "pair": "ab"}, r"^pair must be an array, got 'ab'$"),
        (
            {"count": 1, "places": [{"name": "A", "where": {"x": 1, "y": 1}}, {"name": "B", "where": {"x": "1"}}]},
            r"^places\[1\]\.where is missing required field\(s\) \['y'\] of Point$",
        ),
        (
            {"count": 1, "places": [{"name": "B", "where": {"x": "1", "y": 2}}]},
            r"^places\[0\]\.where\.x must be a number, got '1'$",
        ),
        (
            {"count": 1, "places": [{"name": "B", "where": {"x": 1, "y": 2, "z": 3}}]},
            r"^places\[0\]\.where has unexpected field\(s\) \['z'\] for Point$",
        ),
        ({"count": 1, "places": {"name": "B"}}, r"^places must be an array, got \{'name': 'B'\}$"),
        ({"count": 1, "places": ["B"]}, r"^places\[0\] must be an object \(Place\), got 'B'$"),
        ({"count": 1, "m": {"k": [1, "x"]}}, r"^m\['k'\]\[1\] must be an integer, got 'x'$"),
        ({"count": 1, "color": "blue"}, r"^color must be one of \['red', 'green'\], got 'blue'$"),
    ],
)
def test_bind_rejects(arguments: dict[str, Any], message: str) -> None:
    def f(
        count: int,
        flag: bool = False,
        pair: tuple[str, int] = ("a", 1),
        places: list[Place] | None = None,
        m: dict[str, list[int]] | None = None,
        color: Color = Color.RED,
    ) -> None:
        pass

    with pytest.raises(ConversionError, match=message):
        Tool(f).bind(arguments)


def test_conversion_messages_for_other_types() -> None:
    with pytest.raises(ConversionError, match=r"^when must be an ISO 8601 date-time, got 'yesterday'$"):
        convert("yesterday", dt.datetime, "when")
    with pytest.raises(ConversionError, match=r"^when must be a string \(an ISO 8601 date-time\), got 3$"):
        convert(3, dt.datetime, "when")
    with pytest.raises(ConversionError, match=r"^at must be an ISO 8601 time, got '25:00'$"):
        convert("25:00", dt.time, "at")
    with pytest.raises(ConversionError, match=r"^id must be a UUID, got 'x'$"):
        convert("x", uuid.UUID, "id")
    with pytest.raises(ConversionError, match=r"^price must be a decimal number, got '1,5'$"):
        convert("1,5", decimal.Decimal, "price")
    with pytest.raises(ConversionError, match=r"^price must be a string \(a decimal number\), got True$"):
        convert(True, decimal.Decimal, "price")
    with pytest.raises(ConversionError, match=r"^data must be base64 text, got 'a'$"):
        convert("a", bytes, "data")
    with pytest.raises(ConversionError, match=r"^where must be a string \(a path\), got 3$"):
        convert(3, pathlib.Path, "where")
    with pytest.raises(ConversionError, match=r"^order must be one of \['asc', 'desc'\], got 'up'$"):
        convert("up", Literal["asc", "desc"], "order")
    with pytest.raises(ConversionError, match=r"^level must be one of \[1, 2\], got 3$"):
        convert(3, Level, "level")
    with pytest.raises(ConversionError, match=r"^person does not fit Person: "):
        convert({"name": "Bo"}, Person, "person")
    with pytest.raises(ConversionError, match=r"^x must be an integer, got \[\] or x must be a string, got \[\]$"):
        convert([], Union[int, str], "x")  # noqa: UP007
    with pytest.raises(ConversionError, match=r"^x must be an integer, got None or x must be a string, got None$"):
        convert(None, Union[int, str], "x")  # noqa: UP007
    with pytest.raises(ConversionError, match=r"^n must be null, got 0$"):
        convert(0, None, "n")
    with pytest.raises(ConversionError, match=r"^m must be an object, got \[\]$"):
        convert([], dict[str, int], "m")
    assert convert(ANN, Person) is ANN
    assert convert({"a": [1]}, Any) == {"a": [1]}
    assert convert(5, Annotated[int, "note"]) == 5


def test_booleans_are_not_numbers_and_numbers_are_not_booleans() -> None:
    for value, tp in [(True, int), (False, float), (1, bool), (0.0, bool), (True, Literal[1]), (0, Literal[False])]:
        with pytest.raises(ConversionError):
            convert(value, tp)
        assert not Draft202012Validator(type_schema(tp)).is_valid(value)
    for value, tp in [(True, Level), (False, Level)]:
        with pytest.raises(ConversionError, match="must be one of"):
            convert(value, tp)
    assert convert(1, Literal[True, 1]) == 1
    assert convert(True, Literal[True, 1]) is True
    assert convert(1.0, Literal[1]) == 1


def test_numbers_too_large_for_a_float_are_conversion_errors() -> None:
    huge = json.loads("1" + "0" * 400)
    with pytest.raises(ConversionError, match="ratio"):
        convert(huge, float, "ratio")


# --------------------------------------------------------------------------------------------- result text


def test_result_text() -> None:
    assert result_text("plain text") == "plain text"
    assert result_text("") == ""
    assert result_text({"a": 1, "b": [True, None]}) == '{"a": 1, "b": [true, null]}'
    assert result_text({"city": "Zürich"}) == '{"city": "Zürich"}'
    assert result_text([1, "x"]) == '[1, "x"]'
    assert result_text((1, 2)) == "[1, 2]"
    assert result_text(3) == "3"
    assert result_text(2.5) == "2.5"
    assert result_text(True) == "true"
    assert result_text(None) == "null"
    assert result_text(Point(1.0, 2.0)) == '{"x": 1.0, "y": 2.0}'
    assert result_text(Place("Home", Point(0, 1))) == (
        '{"name": "Home", "where": {"x": 0, "y": 1}, "tags": [], "zoom": 3}'
    )
    assert result_text(ANN) == '{"name": "Ann", "age": 41, "address": {"street": "1 Main St", "city": "Oslo"}}'
    when = dt.datetime(2024, 5, 1, 12, 30)
    assert result_text(when) == str(when) == "2024-05-01 12:30:00"
    assert result_text({"when": when}) == '{"when": "2024-05-01 12:30:00"}'
    assert result_text(Color.RED) == "red"  # the value, not the repr-like "Color.RED"
    assert result_text(Level.LOW) == "1"


class Opaque:
    def __init__(self) -> None:
        self.city = "Oslo"
        self._secret = 1


class Shown:
    def __str__(self) -> str:
        return "shown as text"


def test_result_text_is_never_a_python_repr() -> None:
    """Values whose str() is a Python repr reach the model as JSON data or plain text instead."""
    assert result_text({3, 1, 2}) == "[1, 2, 3]"  # was "{1, 2, 3}"
    assert result_text(frozenset({"b", "a"})) == '["a", "b"]'
    assert result_text({1, "a"}) in ('[1, "a"]', '["a", 1]')  # unsortable: as they come
    assert result_text(x * x for x in range(3)) == "[0, 1, 4]"  # was "<generator object ...>"
    assert result_text(range(2)) == "[0, 1]"
    assert result_text({"k": {"a": 1}.keys()}) == '{"k": ["a"]}'
    assert result_text(b"\x00\xff") == "AP8="  # not UTF-8: base64 (was "b'\\x00\\xff'")
    assert result_text(b"plain") == "plain"
    assert result_text(bytearray(b"ok")) == "ok"
    assert result_text((1, (2, 3))) == "[1, [2, 3]]"
    assert result_text(dt.date(2024, 5, 1)) == "2024-05-01"
    assert result_text(dt.time(8, 30)) == "08:30:00"
    assert result_text(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert result_text(decimal.Decimal("0.10")) == "0.10"
    assert result_text(pathlib.PurePosixPath("/tmp/x")) == "/tmp/x"
    assert result_text([dt.date(2024, 5, 1), decimal.Decimal("1.5")]) == '["2024-05-01", "1.5"]'
    assert result_text({(1, 2): "tuple key", 3: "int key"}) == '{"[1, 2]": "tuple key", "3": "int key"}'
    assert result_text(Opaque()) == '{"city": "Oslo"}'  # not "<Opaque object at 0x...>"
    assert result_text(Shown()) == "shown as text"
    assert result_text(float("nan")) == "nan"  # JSON has no NaN: text, never invalid JSON
    pair = collections.namedtuple("pair", "a b")
    assert result_text(pair(1, 2)) == '{"a": 1, "b": 2}'
    loop: list[Any] = []
    loop.append(loop)
    assert result_text(loop) == "[[...]]"  # a structure that contains itself: str() rather than a crash


def test_error_text() -> None:
    assert error_text(ValueError("bad city")) == "Error: ValueError: bad city"
    assert error_text(KeyError()) == "Error: KeyError"


# --------------------------------------------------------------------------------------------- structured output


ANSWER_SCHEMA = {
    "type": "object",
    "title": "Answer",
    "properties": {"text": STRING, "score": INTEGER},
    "required": ["text", "score"],
    "additionalProperties": False,
}


def test_response_format_for_dataclass() -> None:
    assert response_format_for(Answer) == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": ANSWER_SCHEMA, "strict": True},
    }
    assert response_format_for(Place) == {
        "type": "json_schema",
        "json_schema": {"name": "Place", "schema": PLACE_SCHEMA, "strict": False},
    }


def test_response_format_for_pydantic() -> None:
    closed_address = {**ADDRESS_SCHEMA, "additionalProperties": False}
    assert response_format_for(Person) == {
        "type": "json_schema",
        "json_schema": {
            "name": "Person",
            "schema": {**PERSON_SCHEMA, "additionalProperties": False, "$defs": {"Address": closed_address}},
            "strict": True,
        },
    }
    settings_format = response_format_for(Settings)
    assert settings_format["json_schema"]["strict"] is False
    assert settings_format["json_schema"]["name"] == "Settings"


def test_strict_detection() -> None:
    @dataclasses.dataclass
    class Nested:
        inner: Place

    @dataclasses.dataclass
    class Mapping:
        scores: dict[str, int]

    @dataclasses.dataclass
    class Optionals:
        maybe: int | None
        when: dt.datetime
        choices: list[Literal["a", "b"]]

    @dataclasses.dataclass
    class Keywords:
        default: str
        enum: Point
        type: str

    class Doc(pydantic.BaseModel):
        default: int
        enum: str

    assert response_format_for(Nested)["json_schema"]["strict"] is False
    assert response_format_for(Mapping)["json_schema"]["strict"] is False
    assert response_format_for(Optionals)["json_schema"]["strict"] is True
    assert response_format_for(Movie)["json_schema"]["strict"] is True
    assert response_format_for(MovieFilter)["json_schema"]["strict"] is False
    assert response_format_for(Keywords)["json_schema"]["strict"] is True
    assert response_format_for(Doc)["json_schema"]["strict"] is True


def test_parser_returns_validated_instances() -> None:
    parse = parser_for(Answer)
    assert parse('{"text": "hi", "score": 3}') == Answer("hi", 3)
    assert parse('```json\n{"text": "hi", "score": 3}\n```') == Answer("hi", 3)
    assert parse('  ```\n{"text": "hi", "score": 3}```  ') == Answer("hi", 3)
    person = parser_for(Person)(f"```json\n{ANN.model_dump_json()}\n```")
    assert type(person) is Person
    assert person == ANN
    assert parser_for(Movie)('{"title": "Up", "year": 2009}') == {"title": "Up", "year": 2009}


def test_parser_errors_carry_the_text() -> None:
    parse = parser_for(Answer, model="openai/gpt-4o-mini")
    with pytest.raises(irouter.StructuredOutputError, match=r"not valid JSON for Answer") as invalid:
        parse("Sure! Here it is")
    assert invalid.value.text == "Sure! Here it is"
    assert invalid.value.target is Answer
    assert invalid.value.model == "openai/gpt-4o-mini"
    assert str(invalid.value).endswith("(model: openai/gpt-4o-mini)")
    assert isinstance(invalid.value, ValueError)

    text = '```json\n{"text": "hi"}\n```'
    with pytest.raises(irouter.StructuredOutputError, match=r"does not fit Answer: .*missing.*\['score'\]") as unfit:
        parse(text)
    assert unfit.value.text == text

    with pytest.raises(irouter.StructuredOutputError, match=r"Answer\.score must be an integer") as wrong:
        parser_for(Answer)('{"text": "hi", "score": "3"}')
    assert wrong.value.model is None
    with pytest.raises(irouter.StructuredOutputError, match="does not fit Person"):
        parser_for(Person)('{"name": "Bo", "age": 3}')


# --------------------------------------------------------------------------------------------- properties

_names = itertools.count()

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
JSON_VALUES = st.recursive(
    JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


class Shape(NamedTuple):
    """A type annotation, a strategy for Python values of it, and one for JSON values that do not fit it."""

    tp: Any
    values: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any]


def _encode(obj: Any) -> Any:
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (dt.date, dt.time)):
        return obj.isoformat()
    if isinstance(obj, dt.timedelta):  # ISO 8601, all in seconds: an encoding of the test's own
        micro = abs(obj) // dt.timedelta(microseconds=1)
        return f"{'-' if obj < dt.timedelta(0) else ''}PT{micro // 10**6}.{micro % 10**6:06d}S"
    if isinstance(obj, (uuid.UUID, decimal.Decimal, pathlib.PurePath)):
        return str(obj)
    if isinstance(obj, bytes):
        return base64.b64encode(obj).decode()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    raise TypeError(f"not JSON: {obj!r}")


def to_json(value: Any) -> Any:
    """What a model would send for ``value``: JSON text with tuples as lists, dataclasses as objects, enum values."""
    return json.loads(json.dumps(value, default=_encode))


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema's ``enum`` sees it: booleans are not numbers."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _not_among(values: list[Any]) -> st.SearchStrategy[Any]:
    return JSON_SCALARS.filter(lambda v: not any(json_equal(v, a) for a in values))


def _json_of(shape: Shape) -> st.SearchStrategy[Any]:
    return shape.values.map(to_json)


def _literal() -> st.SearchStrategy[Shape]:
    def build(values: list[Any]) -> Shape:
        return Shape(Literal.__getitem__(tuple(values)), st.sampled_from(values), _not_among(values))

    unique = st.lists(JSON_SCALARS, min_size=1, max_size=4, unique_by=lambda v: (type(v), v))
    return unique.map(build)


def _enum() -> st.SearchStrategy[Shape]:
    def build(values: list[Any]) -> Shape:
        members = {f"M{i}": v for i, v in enumerate(values)}
        cls = enum.Enum(f"E{next(_names)}", members)  # type: ignore[misc]
        return Shape(cls, st.sampled_from(list(cls)), _not_among(values))

    return st.lists(st.integers() | st.text(max_size=6), min_size=1, max_size=4, unique=True).map(build)


WRONG_FOR_STR = st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))
WRONG_FOR_INT = st.one_of(
    st.text(max_size=4),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
WRONG_FOR_FLOAT = st.one_of(st.text(max_size=4), st.booleans(), st.none(), st.lists(st.floats(), max_size=0))
WRONG_FOR_BOOL = st.one_of(st.integers(), st.text(max_size=4), st.none(), st.floats(allow_nan=False))
WRONG_FOR_NONE = st.one_of(st.integers(), st.text(max_size=4), st.booleans(), st.lists(st.none(), max_size=1))

LEAVES = st.one_of(
    st.just(Shape(str, st.text(max_size=8), WRONG_FOR_STR)),
    st.just(Shape(int, st.integers(), WRONG_FOR_INT)),
    st.just(Shape(float, st.floats(allow_nan=False, allow_infinity=False), WRONG_FOR_FLOAT)),
    st.just(Shape(bool, st.booleans(), WRONG_FOR_BOOL)),
    st.just(Shape(type(None), st.none(), WRONG_FOR_NONE)),
    _literal(),
    _enum(),
)


def _list_of(c: Shape) -> Shape:
    def with_one_bad(data: tuple[list[Any], Any, int]) -> list[Any]:
        good, bad, at = data
        return [*good[:at], bad, *good[at:]]

    one_bad = st.tuples(st.lists(_json_of(c), max_size=2), c.invalid, st.integers(0, 2)).map(with_one_bad)
    return Shape(list[c.tp], st.lists(c.values, max_size=3), one_bad | st.text(max_size=3) | st.just({}))


def _dict_of(c: Shape) -> Shape:
    one_bad = st.tuples(st.dictionaries(st.text(max_size=3), _json_of(c), max_size=2), c.invalid).map(
        lambda data: {**data[0], "\x00bad": data[1]}
    )
    return Shape(
        dict[str, c.tp],
        st.dictionaries(st.text(max_size=5), c.values, max_size=3),
        one_bad | st.lists(st.integers(), max_size=1),
    )


def _variadic_tuple_of(c: Shape) -> Shape:
    return Shape(
        tuple[c.tp, ...],
        st.lists(c.values, max_size=3).map(tuple),
        st.tuples(st.lists(_json_of(c), max_size=2), c.invalid).map(lambda d: [*d[0], d[1]]) | st.just(7),
    )


def _optional_of(c: Shape) -> Shape:
    return Shape(
        Optional[c.tp],  # noqa: UP045
        st.none() | c.values,
        c.invalid.filter(lambda v: v is not None),
    )


def _tuple_of(cs: list[Shape]) -> Shape:
    goods = st.tuples(*(_json_of(c) for c in cs)).map(list)

    @st.composite
    def one_bad(draw: Any) -> list[Any]:
        at = draw(st.integers(0, len(cs) - 1))
        return [draw(c.invalid if i == at else _json_of(c)) for i, c in enumerate(cs)]

    wrong_length = st.one_of(goods.map(lambda g: g[:-1]), st.tuples(goods, JSON_VALUES).map(lambda d: [*d[0], d[1]]))
    return Shape(
        tuple[tuple(c.tp for c in cs)],
        st.tuples(*(c.values for c in cs)),
        st.one_of(one_bad(), wrong_length, st.text(max_size=3)),
    )


def _dataclass_of(cs: list[Shape]) -> Shape:
    names = [f"f{i}" for i in range(len(cs))]
    cls = dataclasses.make_dataclass(f"D{next(_names)}", [(n, c.tp) for n, c in zip(names, cs, strict=True)])
    goods = st.fixed_dictionaries({n: _json_of(c) for n, c in zip(names, cs, strict=True)})

    @st.composite
    def one_bad(draw: Any) -> dict[str, Any]:
        at = draw(st.integers(0, len(cs) - 1))
        return {**draw(goods), names[at]: draw(cs[at].invalid)}

    @st.composite
    def missing(draw: Any) -> dict[str, Any]:
        good = draw(goods)
        del good[names[draw(st.integers(0, len(cs) - 1))]]
        return good

    return Shape(
        cls,
        st.builds(cls, *(c.values for c in cs)),
        st.one_of(
            one_bad(),
            missing(),
            st.tuples(goods, JSON_VALUES).map(lambda d: {**d[0], "unexpected": d[1]}),
            st.lists(st.integers(), max_size=2),
        ),
    )


def _extend(children: st.SearchStrategy[Shape]) -> st.SearchStrategy[Shape]:
    several = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        children.map(_list_of),
        children.map(_dict_of),
        children.map(_variadic_tuple_of),
        children.map(_optional_of),
        several.map(_tuple_of),
        several.map(_dataclass_of),
    )


SHAPES = st.recursive(LEAVES, _extend, max_leaves=8)

WRONG_FOR_TEXT = st.one_of(st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.just({}))
"""Not a string (nor a number, which Decimal also takes): wrong for every type sent as a string."""
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
TEXT_LEAVES = st.one_of(
    st.just(Shape(dt.datetime, st.datetimes(timezones=st.none() | OFFSETS), WRONG_FOR_TEXT | st.integers())),
    st.just(Shape(dt.date, st.dates(), WRONG_FOR_TEXT | st.integers())),
    st.just(Shape(dt.time, st.times(timezones=st.none() | OFFSETS), WRONG_FOR_TEXT | st.integers())),
    st.just(Shape(dt.timedelta, st.timedeltas(), WRONG_FOR_TEXT)),
    st.just(Shape(uuid.UUID, st.uuids(), WRONG_FOR_TEXT | st.integers())),
    st.just(Shape(decimal.Decimal, st.decimals(allow_nan=False, allow_infinity=False), WRONG_FOR_TEXT)),
    st.just(Shape(pathlib.Path, st.text(max_size=8).map(pathlib.Path), WRONG_FOR_TEXT | st.integers())),
    st.just(Shape(bytes, st.binary(max_size=8), WRONG_FOR_TEXT | st.integers())),
)
"""Types sent as strings with a format (or base64). JSON Schema validators do not check formats, so these stay
out of the "convert agrees with jsonschema" property; the round trip and the rejection of wrong kinds hold."""
ALL_SHAPES = st.recursive(LEAVES | TEXT_LEAVES, _extend, max_leaves=8)


def make_tool(annotations: list[Any]) -> Tool:
    """A tool whose keyword-only parameters ``p0, p1, ...`` carry ``annotations``."""

    def func(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    names = [f"p{i}" for i in range(len(annotations))]
    func.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a)
            for n, a in zip(names, annotations, strict=True)
        ]
    )
    func.__annotations__ = dict(zip(names, annotations, strict=True))
    return Tool(func, name="generated")


def assert_same(a: Any, b: Any, where: str = "value") -> None:
    """Deep equality that also insists on the same types all the way down (a tuple is not a list, True not 1)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__} ({a!r} vs {b!r})"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert a == b, where


PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_schema_accepts_values_and_bind_round_trips(data: st.DataObject) -> None:
    shapes = data.draw(st.lists(ALL_SHAPES, min_size=1, max_size=3), label="shapes")
    values = [data.draw(shape.values, label=f"p{i}") for i, shape in enumerate(shapes)]
    tool = make_tool([shape.tp for shape in shapes])

    check_schema(tool.parameters)
    assert tool.parameters["required"] == [f"p{i}" for i in range(len(shapes))]
    serialised = json.dumps({f"p{i}": v for i, v in enumerate(values)}, default=_encode)
    arguments = json.loads(serialised)
    jsonschema.validate(arguments, tool.parameters, cls=Draft202012Validator)

    kwargs = tool.bind(arguments)
    assert list(kwargs) == [f"p{i}" for i in range(len(shapes))]
    for i, value in enumerate(values):
        assert_same(kwargs[f"p{i}"], value, f"p{i}")
    assert tool(**kwargs) == kwargs


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_invalid_values_are_rejected_by_both(data: st.DataObject) -> None:
    shape = data.draw(ALL_SHAPES, label="shape")
    other = data.draw(ALL_SHAPES, label="other")
    bad = data.draw(shape.invalid, label="bad")
    tool = make_tool([other.tp, shape.tp])
    arguments = {"p0": data.draw(_json_of(other), label="p0"), "p1": bad}
    # the strategy must produce JSON
    assert json.loads(json.dumps(arguments)) == arguments

    assert not Draft202012Validator(tool.parameters).is_valid(arguments)
    with pytest.raises(ConversionError, match=r"p1"):
        tool.bind(arguments)
    with pytest.raises(ConversionError):
        convert(bad, shape.tp)
    assert not Draft202012Validator(type_schema(shape.tp)).is_valid(bad)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_property_results_read_back_as_the_argument_type(data: st.DataObject) -> None:
    """What irouter sends back for a value (`to_json_data`, as in tool results) converts to the same value: the
    JSON forms of arguments and results agree. (Bytes are left out: a result that is UTF-8 goes back as its text.)"""
    shape = data.draw(st.recursive(LEAVES | TEXT_LEAVES.filter(lambda s: s.tp is not bytes), _extend, max_leaves=6))
    value = data.draw(shape.values)
    assert_same(convert(json.loads(json.dumps(to_json_data(value))), shape.tp), value)


@PROPERTY_SETTINGS
@given(shape=SHAPES, value=JSON_VALUES)
def test_property_convert_agrees_with_jsonschema(shape: Shape, value: Any) -> None:
    valid = Draft202012Validator(type_schema(shape.tp)).is_valid(value)
    try:
        convert(value, shape.tp)
    except ConversionError:
        assert not valid, f"{value!r} validates against the schema of {shape.tp} but does not convert"
    else:
        assert valid, f"{value!r} converts to {shape.tp} but does not validate against its schema"


def test_property_helpers_notice_differences() -> None:
    with pytest.raises(AssertionError):
        assert_same((1, 2), [1, 2])
    with pytest.raises(AssertionError):
        assert_same([True], [1])
    assert_same({"a": (Point(1.0, 2.0), Color.RED)}, {"a": (Point(1.0, 2.0), Color.RED)})
    assert to_json({"t": (1, Level.LOW), "p": Point(0.5, 1.0)}) == {"t": [1, 1], "p": {"x": 0.5, "y": 1.0}}


# --------------------------------------------------------------------------------------------- types sent as strings


def test_types_sent_as_strings_have_formats() -> None:
    assert type_schema(dt.datetime) == {"type": "string", "format": "date-time"}
    assert type_schema(dt.date) == {"type": "string", "format": "date"}
    assert type_schema(dt.time) == {"type": "string", "format": "time"}
    assert type_schema(dt.timedelta) == {"type": "string", "format": "duration"}
    assert type_schema(uuid.UUID) == {"type": "string", "format": "uuid"}
    assert type_schema(decimal.Decimal) == {"type": "string", "format": "decimal"}
    assert type_schema(pathlib.Path) == {"type": "string", "format": "path"}
    assert type_schema(pathlib.PurePosixPath) == {"type": "string", "format": "path"}
    assert type_schema(bytes) == {"type": "string", "contentEncoding": "base64"}
    assert type_schema(Optional[uuid.UUID]) == {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}  # noqa: UP045
    assert type_schema(list[pathlib.Path]) == {"type": "array", "items": {"type": "string", "format": "path"}}


def test_types_sent_as_strings_convert_back() -> None:
    assert convert("2025-08-05T07:45:20Z", dt.datetime) == dt.datetime(2025, 8, 5, 7, 45, 20, tzinfo=dt.timezone.utc)
    assert convert("2025-08-05 07:45", dt.datetime) == dt.datetime(2025, 8, 5, 7, 45)
    assert convert("07:45:20.5+02:00", dt.time) == dt.time(7, 45, 20, 500000, dt.timezone(dt.timedelta(hours=2)))
    assert convert("12.10", decimal.Decimal) == decimal.Decimal("12.10")
    assert str(convert(0.1, decimal.Decimal)) == "0.1"  # a number is taken too, without float noise
    assert convert(3, decimal.Decimal) == 3
    assert convert("a/b", pathlib.Path) == pathlib.Path("a/b")
    assert type(convert("a", pathlib.PurePosixPath)) is pathlib.PurePosixPath
    assert convert("AP8=", bytes) == b"\x00\xff"
    assert convert("AP8", bytes) == b"\x00\xff"  # padding left out
    assert convert("_-8", bytes) == b"\xff\xef"  # the URL-safe alphabet
    assert convert("AP8=", bytearray) == bytearray(b"\x00\xff")
    assert convert(str(uuid.UUID(int=5)), uuid.UUID) == uuid.UUID(int=5)
    assert convert("P1DT2H30M", dt.timedelta) == dt.timedelta(days=1, hours=2, minutes=30)
    assert convert("P2W", dt.timedelta) == dt.timedelta(weeks=2)
    assert convert("-PT0.5S", dt.timedelta) == dt.timedelta(seconds=-0.5)
    assert convert("pt1.5h", dt.timedelta) == dt.timedelta(minutes=90)
    assert convert(90, dt.timedelta) == dt.timedelta(seconds=90)  # a number of seconds is taken too
    assert convert(-0.25, dt.timedelta) == dt.timedelta(seconds=-0.25)
    for bad in ("P", "PT", "P1Y", "P1M", "1H", "P1DT", "PT1S2", 10**20):
        with pytest.raises(ConversionError, match="must be an ISO 8601 duration"):
            convert(bad, dt.timedelta)
    assert result_text(dt.timedelta(days=1, hours=2, microseconds=500)) == "P1DT2H0.0005S"
    assert result_text(-dt.timedelta(minutes=1)) == "-PT1M"
    assert result_text(dt.timedelta(0)) == "PT0S"


def test_defaults_of_types_sent_as_strings_are_shown() -> None:
    def f(
        where: pathlib.Path = pathlib.Path("out"), when: dt.date = dt.date(2025, 1, 1), sentinel: object = object()
    ) -> None:
        """F."""

    properties = Tool(f).parameters["properties"]
    assert properties["where"]["default"] == "out"
    assert properties["when"]["default"] == "2025-01-01"
    assert "default" not in properties["sentinel"]


def test_builtins_with_and_without_a_signature() -> None:
    assert Tool(divmod)(**Tool(divmod).bind({"x": 7, "y": 2})) == (3, 1)
    with pytest.raises(TypeError, match=r"Cannot read the parameters of 'max'; wrap it in a function"):
        Tool(max)


def test_positional_only_parameters_bind_and_call() -> None:
    def f(a: int, b: int = 2, /, c: int = 3, *args: int, d: int = 4, **rest: int) -> tuple[Any, ...]:
        """F."""
        return a, b, c, args, d, rest

    tool = Tool(f)
    assert list(tool.parameters["properties"]) == ["a", "b", "c", "d"]
    assert tool.parameters["required"] == ["a"]
    assert tool(**tool.bind({"a": 1})) == (1, 2, 3, (), 4, {})
    assert tool(**tool.bind({"a": 1, "b": 5, "d": 6, "e": 7})) == (1, 5, 3, (), 6, {"e": 7})
    with pytest.raises(ConversionError, match=r"missing required argument\(s\) \['a'\]"):
        tool.bind({"b": 1})
    with pytest.raises(ConversionError, match=r"unexpected argument\(s\) \['args'\]"):
        Tool(lambda *args: args, name="star").bind({"args": [1]})


def test_a_type_whose_own_checks_fail_is_a_conversion_error() -> None:
    @dataclasses.dataclass
    class Positive:
        n: int

        def __post_init__(self) -> None:
            if self.n <= 0:
                raise ValueError("n must be positive")

    class Strict(pydantic.BaseModel):
        n: int

        @pydantic.field_validator("n")
        @classmethod
        def check(cls, value: int) -> int:
            raise TypeError("never")  # pydantic lets TypeError through unwrapped

    with pytest.raises(ConversionError, match=r"^p does not fit Positive: n must be positive$"):
        convert({"n": 0}, Positive, "p")
    with pytest.raises(ConversionError, match=r"^s does not fit Strict: TypeError: never$"):
        convert({"n": 1}, Strict, "s")
    with pytest.raises(irouter.StructuredOutputError, match=r"does not fit Positive: .*n must be positive"):
        parser_for(Positive)('{"n": -1}')  # structured output: the raw ValueError escaped before


UserId = typing.NewType("UserId", int)


class Name(str):
    def __new__(cls, value: str) -> "Name":
        if not value.istitle():
            raise ValueError("names are capitalised")
        return super().__new__(cls, value)


def test_newtypes_and_subclasses_of_scalars() -> None:
    """They had an "anything" schema, and a subclass then refused every value."""
    assert type_schema(UserId) == {"type": "integer"}
    assert type_schema(Name) == {"type": "string"}
    assert type_schema(list[UserId]) == {"type": "array", "items": {"type": "integer"}}
    assert convert(7, UserId) == 7
    with pytest.raises(ConversionError, match=r"^uid must be an integer"):
        convert("7", UserId, "uid")
    name = convert("Ada", Name)
    assert type(name) is Name
    assert name == "Ada"
    with pytest.raises(ConversionError, match=r"^n does not fit Name: names are capitalised$"):
        convert("ada", Name, "n")
    with pytest.raises(ConversionError, match=r"^n must be a string"):
        convert(3, Name, "n")


def _python_values() -> st.SearchStrategy[Any]:
    """Python values of many kinds a tool might return, nested."""
    leaves = st.one_of(
        JSON_SCALARS,
        st.floats(),
        st.binary(max_size=6),
        st.datetimes(),
        st.dates(),
        st.times(),
        st.timedeltas(),
        st.uuids(),
        st.decimals(),
        st.text(max_size=5).map(pathlib.PurePosixPath),
        st.sampled_from([Color.RED, Level.LOW]),
        st.builds(Point, st.floats(allow_nan=False), st.floats(allow_nan=False)),
        st.just(ANN),
        st.builds(Opaque),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
            st.dictionaries(st.one_of(st.text(max_size=3), st.integers()), inner, max_size=3),
            st.lists(inner, max_size=3).map(lambda xs: dict(enumerate(xs)).values()),  # iterable, not a list
        ),
        max_leaves=8,
    )


@PROPERTY_SETTINGS
@given(value=_python_values())
def test_property_results_are_text_or_json_never_a_repr(value: Any) -> None:
    text = result_text(value)
    assert isinstance(text, str)
    assert " object at 0x" not in text
    data = to_json_data(value)
    if not isinstance(data, str):
        assert json.loads(text) == json.loads(json.dumps(data))  # valid JSON (no NaN), the same data
