"""Python types <-> JSON Schema: schemas from type hints, and JSON values converted back to the hinted types.

Pure and light: the standard library only (pydantic is used only for pydantic models, which bring it along).
Supported: str, int, float, bool, None, Any, list/set/frozenset/Sequence[T], tuple[A, B] and tuple[T, ...],
dict[str, T], Optional/Union/``X | Y``, Literal, Enum, dataclasses, TypedDict, pydantic models,
``Annotated[T, "description"]``, nested to any depth; and as strings with a ``format``: datetime, date, time,
timedelta (ISO 8601 durations), UUID, Decimal and Path, with bytes as base64 text. `to_json_data` goes the
other way, for tool results.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc as cabc
import dataclasses
import datetime as dt
import decimal
import enum
import json
import pathlib
import re
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin

_BASIC: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    dt.timedelta: {"type": "string", "format": "duration"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    decimal.Decimal: {"type": "string", "format": "decimal"},
    bytes: {"type": "string", "contentEncoding": "base64"},
    bytearray: {"type": "string", "contentEncoding": "base64"},
}
"""Types with a schema of their own; the ones sent as strings are converted back by `_from_text`."""
_PATH = {"type": "string", "format": "path"}
_SEQUENCES = (list, set, frozenset, cabc.Sequence, cabc.MutableSequence, cabc.Set, cabc.Iterable, cabc.Collection)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


def is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__required_keys__")


_TYPEDDICT_QUALIFIERS = tuple(
    q for q in (getattr(typing, n, None) for n in ("Required", "NotRequired", "ReadOnly")) if q is not None
)


def _is_path(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pathlib.PurePath)


def _scalar_base(tp: Any) -> Any:
    """What a ``NewType`` stands for, or the JSON type a subclass of str, int or float builds on (not enums,
    which have their own schema); ``None`` for anything else."""
    supertype = getattr(tp, "__supertype__", None)
    if supertype is not None:
        return supertype
    if isinstance(tp, type) and not issubclass(tp, (enum.Enum, bool)):
        return next((base for base in (str, int, float) if issubclass(tp, base)), None)
    return None


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


class SchemaBuilder:
    """Builds schemas, hoisting pydantic ``$defs`` to the root so ``$ref`` pointers resolve."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self._active: set[Any] = set()

    def finish(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.defs:
            schema = {**schema, "$defs": dict(self.defs)}
        return schema

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is typing.Any or tp is object:
            return {}
        if tp is None:
            return {"type": "null"}
        if tp in _BASIC:
            return dict(_BASIC[tp])
        if _is_path(tp):
            return dict(_PATH)
        origin, args = get_origin(tp), get_args(tp)
        if origin in _TYPEDDICT_QUALIFIERS:
            return self.schema(args[0])
        if origin is typing.Annotated:
            schema = self.schema(args[0])
            notes = [a for a in args[1:] if isinstance(a, str)]
            return {**schema, "description": " ".join(notes)} if notes else schema
        if _is_union(tp):
            return {"anyOf": [self.schema(a) for a in args]}
        if origin is Literal:
            return _literal(args)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _literal(tuple(m.value for m in tp))
        if tp in _SEQUENCES or origin in _SEQUENCES:
            schema = {"type": "array"}
            if args:
                schema["items"] = self.schema(args[0])
            if tp in (set, frozenset) or origin in (set, frozenset, cabc.Set):
                schema["uniqueItems"] = True
            return schema
        if tp is tuple or origin is tuple:
            if not args or (len(args) == 2 and args[1] is Ellipsis):
                return {"type": "array", **({"items": self.schema(args[0])} if args else {})}
            items = [self.schema(a) for a in args]
            return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
        if tp in _MAPPINGS or origin in _MAPPINGS:
            schema = {"type": "object"}
            if len(args) == 2:
                schema["additionalProperties"] = self.schema(args[1])
            return schema
        base = _scalar_base(tp)
        if base is not None:
            return self.schema(base)
        if tp in self._active:  # a recursive type: stay permissive rather than loop forever
            return {}
        if is_pydantic_model(tp):
            return self._pydantic(tp)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self._record(tp, {f.name: f.type for f in dataclasses.fields(tp) if f.init}, _dataclass_required(tp))
        if is_typeddict(tp):
            return self._record(tp, None, set(tp.__required_keys__))
        return {}

    def _record(self, tp: type, fields: dict[str, Any] | None, required: set[str]) -> dict[str, Any]:
        self._active.add(tp)
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
            names = list(fields) if fields is not None else list(hints)
            properties = {name: self.schema(hints.get(name, Any)) for name in names}
        finally:
            self._active.discard(tp)
        schema: dict[str, Any] = {"type": "object", "title": tp.__name__, "properties": properties}
        schema["required"] = [n for n in names if n in required]
        schema["additionalProperties"] = False
        doc = _class_doc(tp)
        if doc:
            schema["description"] = doc
        return schema

    def _pydantic(self, tp: Any) -> dict[str, Any]:
        schema = dict(tp.model_json_schema(ref_template="#/$defs/{model}"))
        self.defs.update(schema.pop("$defs", {}))
        return schema


def _literal(values: tuple[Any, ...]) -> dict[str, Any]:
    kinds = {type(v) for v in values}
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1 and next(iter(kinds)) in (str, int, float, bool, type(None)):
        schema = {**_BASIC[next(iter(kinds))], **schema}
    return schema


def _dataclass_required(tp: type) -> set[str]:
    missing = dataclasses.MISSING
    return {f.name for f in dataclasses.fields(tp) if f.init and f.default is missing and f.default_factory is missing}


def _class_doc(tp: type) -> str:
    doc = tp.__doc__ or ""
    # dataclasses invent "Name(field: type, ...)" docstrings; those say nothing new
    if not doc or doc.startswith(f"{tp.__name__}(") or tp.__doc__ == dict.__doc__:
        return ""
    return doc.strip().split("\n\n")[0].strip()


def type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of one type (with a root ``$defs`` when pydantic models need one)."""
    builder = SchemaBuilder()
    return builder.finish(builder.schema(tp))


# --------------------------------------------------------------------------------------------- conversion


class ConversionError(ValueError):
    """A JSON value does not fit the annotated type; the message names where and why."""


def convert(value: Any, tp: Any, where: str = "value") -> Any:
    """``value`` (parsed JSON) as an instance of ``tp``; raises `ConversionError` when it does not fit."""
    if tp is Any or tp is typing.Any or tp is object or tp is dataclasses.MISSING:
        return value
    if tp is None or tp is type(None):
        if value is not None:
            raise ConversionError(f"{where} must be null, got {_show(value)}")
        return None
    origin, args = get_origin(tp), get_args(tp)
    if origin is typing.Annotated or origin in _TYPEDDICT_QUALIFIERS:
        return convert(value, args[0], where)
    if _is_union(tp):
        return _convert_union(value, args, where)
    if origin is Literal:
        for arg in args:
            if _json_equal(arg, value):
                return arg
        raise ConversionError(f"{where} must be one of {list(args)}, got {_show(value)}")
    if tp is bool:
        return _check(value, bool, "a boolean", where)
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConversionError(f"{where} must be an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConversionError(f"{where} must be a number, got {_show(value)}")
        try:
            return float(value)
        except OverflowError:
            raise ConversionError(f"{where} is too large for a float, got {_show(value)}") from None
    if tp is str:
        return _check(value, str, "a string", where)
    if tp in _FROM_TEXT or _is_path(tp):
        return _from_text(value, tp, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            member = tp(value)
        except Exception:  # ValueError, or whatever a custom _missing_ raises
            member = None
        if member is None or isinstance(member.value, bool) != isinstance(value, bool):
            raise ConversionError(f"{where} must be one of {[m.value for m in tp]}, got {_show(value)}")
        return member
    base = _scalar_base(tp)
    if base is not None:
        plain = convert(value, base, where)
        if not isinstance(tp, type):
            return plain  # a NewType is its supertype at run time
        try:
            return tp(plain)
        except Exception as exc:  # the subclass's own checks
            raise ConversionError(f"{where} does not fit {tp.__name__}: {_reason(exc)}") from None
    if tp in _SEQUENCES or origin in _SEQUENCES:
        items = _check(value, list, "an array", where)
        converted = [convert(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(items)]
        container = origin or tp
        return (
            set(converted)
            if container in (set, cabc.Set)
            else (frozenset(converted) if container is frozenset else converted)
        )
    if tp is tuple or origin is tuple:
        items = _check(value, list, "an array", where)
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return tuple(convert(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(items))
        if len(items) != len(args):
            raise ConversionError(f"{where} must have exactly {len(args)} items, got {len(items)}")
        return tuple(convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(items, args, strict=True)))
    if tp in _MAPPINGS or origin in _MAPPINGS:
        mapping = _check(value, dict, "an object", where)
        if len(args) == 2:
            return {k: convert(v, args[1], f"{where}[{k!r}]") for k, v in mapping.items()}
        return dict(mapping)
    if is_pydantic_model(tp):
        if isinstance(value, tp):
            return value
        try:
            return tp.model_validate(value)
        except Exception as exc:  # pydantic's ValidationError, or what a validator raised that pydantic let through
            raise ConversionError(f"{where} does not fit {tp.__name__}: {_reason(exc)}") from None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        kwargs = _convert_fields(value, tp, {n: f.type for n, f in fields.items()}, _dataclass_required(tp), where)
        try:
            return tp(**kwargs)
        except Exception as exc:  # the class's own checks (__post_init__) refused the values
            raise ConversionError(f"{where} does not fit {tp.__name__}: {_reason(exc)}") from None
    if is_typeddict(tp):
        return _convert_fields(value, tp, None, set(tp.__required_keys__), where)
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConversionError(f"{where} must be {tp.__name__}, got {_show(value)}")
    return value


def _decode_base64(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional; raises ``binascii.Error`` for anything else."""
    standard = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


_DURATION = re.compile(
    r"([-+]?)P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
_MICROSECONDS = (7 * 86_400_000_000, 86_400_000_000, 3_600_000_000, 60_000_000, 1_000_000)


def _parse_duration(text: str) -> dt.timedelta:
    """An ISO 8601 duration without years or months (``P1DT2H30M``, ``PT0.5S``, ``-PT1M``) as a timedelta."""
    match = _DURATION.fullmatch(text.strip().upper())
    if not match or not any(match.groups()[1:]):
        raise ValueError(text)
    micro = sum(decimal.Decimal(v) * unit for v, unit in zip(match.groups()[1:], _MICROSECONDS, strict=True) if v)
    return dt.timedelta(microseconds=int(-micro if match.group(1) == "-" else micro))


def iso_duration(value: dt.timedelta) -> str:
    """A timedelta as an ISO 8601 duration: ``P1DT2H30M``, ``PT0.5S``, ``-PT1M``; `_parse_duration` reads it back."""
    sign, value = ("-", -value) if value < dt.timedelta(0) else ("", value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    second = f"{seconds}.{value.microseconds:06d}".rstrip("0") if value.microseconds else str(seconds)
    clock = (
        (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{second}S" if second != "0" else "")
    )
    days = f"{value.days}D" if value.days else ""
    if not days and not clock:
        clock = "0S"
    return f"{sign}P{days}" + (f"T{clock}" if clock else "")


_FROM_TEXT: dict[Any, tuple[str, Callable[[str], Any]]] = {
    dt.datetime: ("an ISO 8601 date-time", lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))),
    dt.date: ("an ISO 8601 date", dt.date.fromisoformat),
    dt.time: ("an ISO 8601 time", lambda s: dt.time.fromisoformat(s.replace("Z", "+00:00"))),
    dt.timedelta: ("an ISO 8601 duration such as PT1H30M (or a number of seconds)", _parse_duration),
    uuid.UUID: ("a UUID", uuid.UUID),
    decimal.Decimal: ("a decimal number", decimal.Decimal),
    bytes: ("base64 text", _decode_base64),
    bytearray: ("base64 text", lambda s: bytearray(_decode_base64(s))),
}
"""Types sent as JSON strings: what the string must be, and how it becomes the type."""
STRING_TYPES = (*_FROM_TEXT, pathlib.PurePath)
"""Classes whose values travel as JSON strings (with `to_json_data` and `convert`)."""


def _from_text(value: Any, tp: Any, where: str) -> Any:
    """A string as one of the `_FROM_TEXT` types or a path (a ``Decimal`` or ``timedelta`` also from a number)."""
    what, parse = _FROM_TEXT.get(tp) or ("a path", tp)
    if tp in (decimal.Decimal, dt.timedelta) and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = repr(value)  # the shortest text that reads back as the same float: 0.1 -> Decimal("0.1")
        if tp is dt.timedelta:
            value = f"-PT{value[1:]}S" if value.startswith("-") else f"PT{value}S"  # a number of seconds
    text = _check(value, str, f"a string ({what})", where)
    try:
        return parse(text)
    except (ValueError, TypeError, ArithmeticError, binascii.Error):
        raise ConversionError(f"{where} must be {what}, got {_show(value)}") from None


def _reason(exc: BaseException) -> str:
    """What went wrong, for the model: a ``ValueError``'s message alone (pydantic's are detailed), else the class
    name too."""
    message = str(exc)
    if isinstance(exc, ValueError) and message:
        return message
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _convert_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in args:
        return None
    problems = []
    for arm in args:
        if arm is type(None):
            continue
        try:
            return convert(value, arm, where)
        except ConversionError as exc:
            problems.append(str(exc))
    raise ConversionError(" or ".join(problems) if problems else f"{where} must not be null")


def _convert_fields(
    value: Any, tp: type, fields: dict[str, Any] | None, required: set[str], where: str
) -> dict[str, Any]:
    mapping = _check(value, dict, f"an object ({tp.__name__})", where)
    hints = typing.get_type_hints(tp, include_extras=True)
    names = set(fields) if fields is not None else set(hints)
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConversionError(f"{where} has unexpected field(s) {unknown} for {tp.__name__}")
    missing = sorted(required - set(mapping))
    if missing:
        raise ConversionError(f"{where} is missing required field(s) {missing} of {tp.__name__}")
    return {k: convert(v, hints.get(k, Any), f"{where}.{k}") for k, v in mapping.items()}


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _check(value: Any, kind: type, what: str, where: str) -> Any:
    if not isinstance(value, kind):
        raise ConversionError(f"{where} must be {what}, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------------------------- back to JSON


def to_json_data(value: Any) -> Any:
    """``value`` as plain JSON data (dicts with string keys, lists, strings, numbers, booleans, ``None``): the way
    back from `convert`, so a tool's result reaches the model as text or JSON, never as a Python repr.

    Pydantic models and dataclasses become objects; tuples, sets (sorted when they can be), generators and other
    iterables become arrays; Enum members their value; datetimes, dates, times, UUIDs, Decimals and paths their
    ``str()`` (ISO 8601 for the times), durations ISO 8601 (``PT1H30M``); bytes their UTF-8 text, or base64 when
    they are not readable text; NaN and infinities text. An object of any other kind becomes its public attributes
    when its ``str()`` would only be ``<Foo object at 0x...>``, else its ``str()``.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, enum.Enum):
        return to_json_data(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and all(c.isprintable() or c in "\t\n\r" for c in text):
            return text
        return base64.b64encode(data).decode("ascii")
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, (dt.date, dt.time, uuid.UUID, decimal.Decimal, pathlib.PurePath, complex)):
        return str(value)
    if is_pydantic_model(type(value)):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a namedtuple: keep the names
        return to_json_data(value._asdict())
    if isinstance(value, cabc.Mapping):
        return {_json_key(k): to_json_data(v) for k, v in value.items()}
    if isinstance(value, (cabc.Set, cabc.KeysView)):
        items = [to_json_data(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, cabc.Iterable):
        return [to_json_data(v) for v in value]
    if hasattr(value, "__dict__") and str(value) == object.__repr__(value):  # "<Foo object at 0x...>" says nothing
        return {k: to_json_data(v) for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


def _json_key(key: Any) -> str:
    data = to_json_data(key)
    return data if isinstance(data, str) else json.dumps(data)
