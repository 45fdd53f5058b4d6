"""Structured output: a Python type as ``response_format``, and the reply validated back into that type."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

from ._schema import ConversionError, convert, is_pydantic_model, is_typeddict, type_schema
from .errors import StructuredOutputError

_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.S)


def is_output_type(value: Any) -> bool:
    """True for a pydantic model class, a dataclass or a TypedDict (things ``response_format=`` may be)."""
    return isinstance(value, type) and (
        is_pydantic_model(value) or dataclasses.is_dataclass(value) or is_typeddict(value)
    )


def response_format_for(tp: type) -> dict[str, Any]:
    """OpenRouter's ``json_schema`` response format for ``tp``; strict when the schema allows it (every object
    closed and every property required)."""
    schema = type_schema(tp)
    strict = _strict_ready(schema)
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", tp.__name__)[:64] or "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}


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


def parser_for(tp: type, model: str | None = None) -> Callable[[str], Any]:
    """A function turning the reply text into a validated ``tp``, raising `StructuredOutputError` otherwise."""

    def parse(text: str) -> Any:
        match = _FENCE.match(text)
        payload = match.group(1) if match else text
        try:
            value = json.loads(payload)
        except ValueError as exc:
            raise StructuredOutputError(
                f"The reply is not valid JSON for {tp.__name__}: {exc}", text=text, target=tp, model=model
            ) from None
        try:
            return convert(value, tp, tp.__name__)
        except ConversionError as exc:
            raise StructuredOutputError(
                f"The reply does not fit {tp.__name__}: {exc}", text=text, target=tp, model=model
            ) from None

    return parse
