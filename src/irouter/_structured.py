"""Structured output: a Python type as ``response_format``, and the reply validated back into that type.

A pydantic model, dataclass or TypedDict is sent as the schema itself. Any other type irouter can describe
(``list[City]``, ``dict[str, int]``, ``City | Country``, ``Literal[...]``, an Enum, ``int``...) is wrapped in an
object with one property, ``response`` (OpenAI-style servers want an object at the root), and unwrapped from the
reply.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from ._schema import ConversionError, convert, is_pydantic_model, is_typeddict, type_schema
from .errors import StructuredOutputError

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.S)
WRAPPER = "response"
"""The one property of the object that carries a type whose schema is not an object of its own."""


def is_output_type(value: Any) -> bool:
    """True for a pydantic model class, a dataclass or a TypedDict (sent as they are, without a wrapper)."""
    return isinstance(value, type) and (
        is_pydantic_model(value) or dataclasses.is_dataclass(value) or is_typeddict(value)
    )


def output_type(response_format: Any) -> Any:
    """The type the reply is parsed into, or ``None`` when ``response_format`` is a dict (sent as it is) or absent.

    Raises ``TypeError`` before any request for anything else, and for a type irouter cannot describe as JSON
    Schema (``Any``, a plain class).
    """
    if response_format is None or isinstance(response_format, dict):
        return None
    is_type = isinstance(response_format, (type, types.UnionType)) or typing.get_origin(response_format) is not None
    if not is_type:
        raise TypeError(
            f"response_format must be a type (a pydantic model, dataclass, TypedDict, or list[...] / union of "
            f"them) or a response_format dict, got {response_format!r}"
        )
    if not type_schema(response_format):
        raise TypeError(
            f"response_format={type_name(response_format)} cannot be described as JSON Schema; pass a pydantic "
            "model, dataclass or TypedDict (or a list, dict or union of them), or a response_format dict"
        )
    return response_format


def type_name(tp: Any) -> str:
    """A short readable name: ``City``, ``list[City]``, ``City | None``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is None or tp is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or getattr(origin, "_name", None) or str(origin)
        shown = [repr(a) if origin is typing.Literal else type_name(a) for a in args]
        return f"{name}[{', '.join(shown)}]"
    if tp is Ellipsis:
        return "..."
    return getattr(tp, "__name__", None) or repr(tp)


def response_format_for(tp: Any) -> dict[str, Any]:
    """OpenRouter's ``json_schema`` response format for ``tp``; strict when the schema allows it (every object
    closed and every property required). Types that are not records are wrapped (see the module docstring)."""
    schema = type_schema(tp)
    if _wrapped(tp, schema):
        defs = schema.pop("$defs", None)
        schema = {
            "type": "object",
            "properties": {WRAPPER: schema},
            "required": [WRAPPER],
            "additionalProperties": False,
            **({"$defs": defs} if defs else {}),
        }
    strict = _strict_ready(schema)
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", type_name(tp)).strip("_")[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


def _wrapped(tp: Any, schema: dict[str, Any]) -> bool:
    """Is ``tp`` sent inside the ``response`` wrapper? Yes unless it is a record whose schema is an object (a
    pydantic ``RootModel`` of a list is not)."""
    return not is_output_type(tp) or schema.get("type") != "object"


def _strict_ready(schema: Any) -> bool:
    """Can ``schema`` be sent with ``strict: true``? Closes every object on the way (``additionalProperties``)."""
    if isinstance(schema, list):
        checks = [_strict_ready(s) for s in schema]  # visit every item: each object gets closed
        return all(checks)
    if not isinstance(schema, dict):
        return True
    ok = True
    if schema.get("type") == "object" and "properties" in schema:
        if set(schema.get("required", [])) != set(schema["properties"]):
            ok = False
        schema.setdefault("additionalProperties", False)
        if schema["additionalProperties"] is not False:
            ok = False
    elif schema.get("type") == "object":
        ok = False  # free-form mappings cannot be strict
    if "default" in schema:
        ok = False
    # keywords whose values map names to schemas: the names may be anything ("default", "enum", ...)
    named = [s for k in ("properties", "$defs") if isinstance(schema.get(k), dict) for s in schema[k].values()]
    checks = [_strict_ready(s) for s in named]
    checks += [_strict_ready(v) for k, v in schema.items() if k not in ("enum", "const", "properties", "$defs")]
    return ok and all(checks)


def parser_for(tp: Any, model: str | None = None) -> Callable[[str], Any]:
    """A function turning the reply text into a validated ``tp``, raising `StructuredOutputError` otherwise. A
    wrapped type is taken from the ``response`` property, or as the whole reply when the model left the wrapper
    out."""
    name = type_name(tp)
    wrapped = _wrapped(tp, type_schema(tp))

    def parse(text: str) -> Any:
        match = _FENCE.match(text)
        payload = match.group(1) if match else text
        try:
            value = json.loads(payload)
        except ValueError as exc:
            raise StructuredOutputError(
                f"The reply is not valid JSON for {name}: {exc}", text=text, target=tp, model=model
            ) from None
        unwrap = wrapped and isinstance(value, dict) and set(value) == {WRAPPER}
        candidates = [value[WRAPPER], value] if unwrap else [value]
        problems = []
        for candidate in candidates:
            try:
                return convert(candidate, tp, name)
            except ConversionError as exc:
                problems.append(exc)
        raise StructuredOutputError(
            f"The reply does not fit {name}: {problems[0]}", text=text, target=tp, model=model
        ) from None

    return parse
