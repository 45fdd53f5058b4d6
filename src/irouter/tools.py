"""Tools: plain Python functions the model may call.

A function becomes a tool schema from its name, its docstring (the summary becomes the description; reST
``:param x:``, Google ``Args:`` and NumPy ``Parameters`` sections describe the parameters) and its type hints.
When the model calls it, the JSON arguments are parsed, converted to the annotated types (a dataclass or pydantic
parameter arrives as an instance) and the function runs; what it returns goes back to the model as text.

The model's mistakes go back to the model and the loop goes on: an unknown tool name, arguments that are not JSON
or do not fit, a tool that raises all become a tool message such as ``"Error: ValueError: ..."``. The caller's
mistakes raise at once: something that is not callable, two tools with one name, a name OpenRouter rejects.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._cancel import ReentrantCallError
from ._schema import STRING_TYPES, ConversionError, SchemaBuilder, convert, to_json_data

__all__ = ["Tool", "ToolCall", "ToolResult", "function_schema"]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SECTION = re.compile(
    r"^\s*(:param|:parameter|:arg|:type|:returns?:|:rtype:|:raises?|"
    r"(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|Attributes|Keyword Args)\s*:?\s*$)",
    re.M,
)


@dataclass
class ToolCall:
    """A call the model asked for, as the ``before_tool``/``after_tool`` hooks see it."""

    id: str
    name: str
    arguments: dict[str, Any] | None
    """The parsed JSON arguments (``None`` when they were not valid JSON)."""
    raw_arguments: str
    model: str
    step: int
    """1 for the calls of the turn's first response, 2 for the next, ..."""


@dataclass
class ToolResult:
    """What a call produced: the text sent back to the model, and the value or error behind it."""

    call: ToolCall
    content: str
    value: Any = None
    error: BaseException | None = None


BeforeTool = Callable[[ToolCall], "bool | str | Awaitable[bool | str | None] | None"]
"""Sees each call before it runs: ``False`` refuses it, a string answers in its place. ``async def`` only in an
`AsyncChat`/`AsyncCall`, which await it."""
AfterTool = Callable[[ToolResult], "Awaitable[None] | None"]


# --------------------------------------------------------------------------------------------- docstrings


def split_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(summary, {parameter: description}) from a reST, Google or NumPy docstring."""
    text = inspect.cleandoc(doc or "")
    if not text:
        return "", {}
    match = _SECTION.search(text)
    summary = (text[: match.start()] if match else text).strip()
    return summary, {**_rest_params(text), **_google_params(text), **_numpy_params(text)}


def _rest_params(text: str) -> dict[str, str]:
    params = {}
    for m in re.finditer(r"^\s*:(?:param|parameter|arg)\s+(?:[^:]*\s)?(\w+):\s*(.*(?:\n(?!\s*:)\s+.+)*)", text, re.M):
        params[m.group(1)] = " ".join(m.group(2).split())
    return params


def _google_params(text: str) -> dict[str, str]:
    block = re.search(
        r"^([ \t]*)(?:Args|Arguments|Parameters|Params|Keyword Args)[ \t]*:[ \t]*\n((?:\1[ \t]+.*\n?|[ \t]*\n)+)",
        text,
        re.M,
    )
    if not block:
        return {}
    params: dict[str, str] = {}
    indent = None
    current = None
    for line in block.group(2).splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        m = re.match(r"\s*\**(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)", line)
        if m and (indent is None or depth <= indent):
            indent = depth
            current = m.group(1)
            params[current] = m.group(2).strip()
        elif current:
            params[current] = f"{params[current]} {line.strip()}".strip()
    return params


def _numpy_params(text: str) -> dict[str, str]:
    block = re.search(r"^\s*Parameters\s*\n\s*-{3,}\s*\n((?:.*\n?)*?)(?:^\s*\w[\w ]*\n\s*-{3,}|\Z)", text, re.M)
    if not block:
        return {}
    params: dict[str, str] = {}
    current = None
    for line in block.group(1).splitlines():
        m = re.match(r"^(\w+)\s*(?::.*)?$", line)
        if m and not line.startswith((" ", "\t")):
            current = m.group(1)
            params[current] = ""
        elif current and line.strip():
            params[current] = f"{params[current]} {line.strip()}".strip()
    return params


# --------------------------------------------------------------------------------------------- tools


def _target(func: Callable[..., Any]) -> Callable[..., Any]:
    """The function behind partials and callable objects (for its name, docstring and hints)."""
    while isinstance(func, functools.partial):
        func = func.func
    if not (inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func)) and callable(func):
        call: Callable[..., Any] = type(func).__call__
        return call
    return func


class Tool:
    """A Python callable offered to the model. Functions, methods, ``functools.partial`` and async functions work.

    Args:
        func: the callable.
        name: the name the model sees (default: the function's ``__name__``).
        description: what the model reads about it (default: the docstring's summary).
    """

    def __init__(self, func: Callable[..., Any], name: str | None = None, description: str | None = None) -> None:
        if not callable(func):
            raise TypeError(f"A tool must be callable (a function, method or partial), got {func!r}")
        target = _target(func)
        self.func = func
        default_name = getattr(func, "__name__", None) or (
            target.__name__ if inspect.isfunction(target) and target.__name__ != "__call__" else type(func).__name__
        )
        self.name = name or default_name
        if not TOOL_NAME.fullmatch(self.name):
            raise ValueError(
                f"Tool name {self.name!r} is not allowed: OpenRouter takes 1-64 letters, digits, '_' or '-'. "
                "Pass Tool(func, name='...') to rename it."
            )
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(target)
        summary, param_docs = split_docstring(
            getattr(func, "__doc__", None) if inspect.isroutine(func) else target.__doc__
        )
        self.description = description if description is not None else summary
        try:
            self._signature = inspect.signature(func)
        except (TypeError, ValueError):  # builtins such as max() publish no signature
            raise TypeError(
                f"Cannot read the parameters of {self.name!r}; wrap it in a function with named parameters"
            ) from None
        self._hints = _type_hints(target)
        self.parameters = self._parameters(param_docs)

    def _parameters(self, docs: Mapping[str, str]) -> dict[str, Any]:
        builder = SchemaBuilder()
        properties: dict[str, Any] = {}
        required: list[str] = []
        for pname, param in self._signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            annotation = self._hints.get(pname, typing.Any)
            schema = builder.schema(annotation)
            if not schema and isinstance(annotation, type) and annotation not in (object, typing.Any):
                if param.default is param.empty:
                    raise TypeError(
                        f"Tool {self.name!r}: parameter {pname!r} is typed {annotation.__name__}, which irouter "
                        "cannot describe to the model nor build from JSON, so no call could succeed. Type it with "
                        "JSON-friendly types (str, int, list[...], a dataclass, a pydantic model...) and build the "
                        f"{annotation.__name__} inside the tool, or give it a default (then it is not offered)."
                    )
                continue  # the model could send nothing that fits: it is left out, and the default is used
            if docs.get(pname) and "description" not in schema:
                schema["description"] = docs[pname]
            if param.default is param.empty:
                required.append(pname)
            else:
                default = _jsonable(param.default)
                if default is not _NOT_JSON:
                    schema["default"] = default
            properties[pname] = schema
        return builder.finish({"type": "object", "properties": properties, "required": required})

    @property
    def schema(self) -> dict[str, Any]:
        """The entry for the request's ``tools`` list."""
        function: dict[str, Any] = {"name": self.name, "parameters": self.parameters}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the function, converted to the annotated types; raises ``ConversionError``."""
        params = {n: p for n, p in self._signature.parameters.items() if p.kind is not p.VAR_POSITIONAL}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        params = {n: p for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
        unknown = [k for k in arguments if k not in params and not takes_any]
        if unknown:
            raise ConversionError(f"unexpected argument(s) {unknown}; {self.name} takes {self._accepted()}")
        kwargs = {}
        for key, value in arguments.items():
            annotation = self._hints.get(key, typing.Any) if key in params else typing.Any
            kwargs[key] = convert(value, annotation, key)
        missing = [n for n, p in params.items() if p.default is p.empty and n not in kwargs]
        if missing:
            raise ConversionError(f"missing required argument(s) {missing}")
        return kwargs

    def _accepted(self) -> str:
        names = [n for n, p in self._signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL,)]
        return ", ".join(names) or "no arguments"

    def start(self, **kwargs: Any) -> Any:
        """Call the function with keyword arguments from `bind` (positional-only ones passed by position); an
        async function's coroutine is returned as it is, not awaited."""
        only = [p for p in self._signature.parameters.values() if p.kind is p.POSITIONAL_ONLY]
        given = [i for i, p in enumerate(only) if p.name in kwargs]
        # up to the last one given; one left out before it takes its default
        positional = [kwargs.pop(p.name, p.default) for p in only[: given[-1] + 1]] if given else []
        return self.func(*positional, **kwargs)

    def __call__(self, **kwargs: Any) -> Any:
        """Run the function; an async one runs to completion in a fresh event loop (on a helper thread when this
        thread already runs a loop, as in Jupyter)."""
        result = self.start(**kwargs)
        if not inspect.isawaitable(result):
            return result
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(_await(result))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="irouter-tool") as pool:
            return pool.submit(asyncio.run, _await(result)).result()

    def __repr__(self) -> str:
        return f"Tool({self.name!r})"


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved type hints; a hint that cannot be resolved (a string naming a class local to some
    other function) is left out, so that parameter gets a permissive schema instead of a wrong one."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        pass
    hints = {}
    namespace = getattr(func, "__globals__", {})
    for name, annotation in getattr(func, "__annotations__", {}).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:
            continue
    return hints


async def _await(awaitable: Any) -> Any:
    return await awaitable


_NOT_JSON = object()


def _jsonable(value: Any) -> Any:
    """A default as JSON data (an Enum member as its value, a date or path as its text), or ``_NOT_JSON``."""
    if isinstance(value, (enum.Enum, *STRING_TYPES)):
        value = to_json_data(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return _NOT_JSON
    return value


def function_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The OpenAI/OpenRouter tool schema of a function: ``{'type': 'function', 'function': {...}}``."""
    return Tool(func).schema


class Toolbox:
    """The tools of a turn: local `Tool` objects by name, plus ready-made schema dicts passed through as they are
    (OpenRouter server tools such as ``{"type": "openrouter:web_search"}``). An item with an ``__irouter_tools__()``
    method (an `irouter.mcp.Server`) stands for the tools it returns."""

    def __init__(self, tools: Sequence[Any] | None, servers: bool = True) -> None:
        """``servers=False`` checks the list without starting its servers (their tools are left out)."""
        if tools is None:
            tools = []
        if callable(tools) or isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
            raise TypeError("tools must be a list of functions (or Tool objects / tool schema dicts)")
        self.local: dict[str, Tool] = {}
        self.schemas: list[dict[str, Any]] = []
        self.declared: set[str] = set()
        """Names of the functions given as schema dicts: the caller runs those (``Chat.answer_tool_calls``)."""
        for item in tools:
            if isinstance(item, Mapping):
                self.schemas.append(dict(item))
                function = item.get("function")
                if isinstance(function, Mapping) and isinstance(function.get("name"), str):
                    self.declared.add(function["name"])
                continue
            source = getattr(item, "__irouter_tools__", None)  # a server of tools (irouter.mcp)
            if source is not None and not servers:
                continue
            for tool in source() if source is not None else [item if isinstance(item, Tool) else Tool(item)]:
                if tool.name in self.local:
                    raise ValueError(
                        f"Two tools are named {tool.name!r}; names must be unique. Rename one with "
                        "Tool(func, name=...) (or give an MCP server a prefix=)."
                    )
                self.local[tool.name] = tool
                self.schemas.append(tool.schema)

    def __bool__(self) -> bool:
        return bool(self.schemas)

    def runs(self, name: str) -> bool:
        """Does irouter answer a call to ``name`` itself? Yes for a local tool, and for a name no tool has while
        there are local tools (the model is told it is unknown); no for a function given as a schema dict, or
        when there are no local tools at all: such calls are left for the caller to answer."""
        return name in self.local or (bool(self.local) and name not in self.declared)


def tool_servers(tools: Any) -> list[Any]:
    """The servers of tools (`irouter.mcp.Server`) among a ``tools=`` list, for closing them with the chat."""
    items = tools if isinstance(tools, (list, tuple)) else []
    return [item for item in items if hasattr(item, "__irouter_tools__")]


# --------------------------------------------------------------------------------------------- running calls


def error_text(exc: BaseException) -> str:
    """How an exception reads for the model: ``"Error: ValueError: bad city"``."""
    message = str(exc)
    return f"Error: {type(exc).__name__}: {message}" if message else f"Error: {type(exc).__name__}"


def result_text(value: Any) -> str:
    """How a return value reads for the model: a string as it is; anything else as JSON data (`to_json_data`:
    pydantic models and dataclasses as objects, tuples, sets and generators as arrays...), sent bare when that
    data is a single string (a datetime, a path, UTF-8 bytes)."""
    if isinstance(value, str):
        return str.__str__(value)  # a plain str in history, whatever subclass the tool returned
    try:
        data = to_json_data(value)
        return data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    except RecursionError:  # a structure that contains itself (a generator that fails is the tool's error)
        return str(value)


def describe_call(call: Mapping[str, Any], model: str, step: int) -> ToolCall:
    """A tool call from history as a `ToolCall` (arguments parsed when they are JSON)."""
    function = call.get("function") or {}
    raw = function.get("arguments") or "{}"
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return ToolCall(
        id=call.get("id") or "",
        name=function.get("name") or "",
        arguments=parsed if isinstance(parsed, dict) else None,
        raw_arguments=raw,
        model=model,
        step=step,
    )


def pending_calls(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tool calls of the last assistant message that no tool message answers yet (raw, as in history): the
    calls irouter left for the caller. Empty when a user message came after them, or there are none."""
    answered: set[Any] = set()
    for message in reversed(history):
        role = message.get("role")
        if role == "tool":
            answered.add(message.get("tool_call_id"))
        elif role == "assistant":
            return [c for c in message.get("tool_calls") or [] if c.get("id") not in answered]
        else:
            return []
    return []


def answer_message(call_id: str, result: Any) -> dict[str, Any]:
    """The tool message answering a call: a string as it is, an exception as ``Error: ...``, anything else as
    `result_text` makes it."""
    if isinstance(result, BaseException):
        content = error_text(result)
    else:
        content = result_text(result)
    return {"tool_call_id": call_id, "role": "tool", "content": content}


def prepare_call(
    call: ToolCall, toolbox: Toolbox, before: BeforeTool | None
) -> ToolResult | tuple[Tool, dict[str, Any]]:
    """Everything before running a call: find the tool, check and convert the arguments, ask ``before``.

    Returns the finished `ToolResult` when the call must not run (its text says why, for the model), else the tool
    and its keyword arguments. Shared by the sync and async runners.
    """
    tool = toolbox.local.get(call.name)
    if tool is None:
        names = ", ".join(sorted(toolbox.local)) or "none"
        return ToolResult(call, f"Error: unknown tool {call.name!r}. Available tools: {names}.")
    if call.arguments is None:
        try:
            parsed = json.loads(call.raw_arguments)
        except ValueError as exc:
            return ToolResult(call, f"Error: the arguments are not valid JSON ({exc}). Send a JSON object.", error=exc)
        return ToolResult(call, f"Error: the arguments must be a JSON object, got {type(parsed).__name__}.")
    try:
        kwargs = tool.bind(call.arguments)
    except ConversionError as exc:
        return ToolResult(call, f"Error: invalid arguments for {call.name}: {exc}", error=exc)
    if before is not None:
        refused = judge(call, not_awaitable("before_tool", before(call)))
        if refused is not None:
            return refused
    return tool, kwargs


def judge(call: ToolCall, verdict: Any) -> ToolResult | None:
    """What ``before_tool`` said: ``False`` refuses the call, a string answers in its place, anything else lets
    it run (``None``)."""
    if verdict is False:
        return ToolResult(call, f"Error: the user refused to run {call.name}.")
    if isinstance(verdict, str):
        return ToolResult(call, verdict, value=verdict)
    return None


def not_awaitable(name: str, value: Any) -> Any:
    """A sync hook's answer; an awaitable (a hook that is async underneath) cannot be awaited here: refuse it."""
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()  # no "never awaited" warning on top of the error
        raise TypeError(
            f"{name} returned an awaitable, which a Chat or Call cannot await: use a plain function, or an "
            "AsyncChat/AsyncCall, which awaits it"
        )
    return value


def finish_call(call: ToolCall, value: Any = None, error: Exception | None = None) -> ToolResult:
    """The result of a call that ran: its return value as text, or its exception as ``Error: ...``."""
    if error is not None:
        return ToolResult(call, error_text(error), error=error)
    return ToolResult(call, result_text(value), value=value)


def run_call(call: ToolCall, toolbox: Toolbox, before: BeforeTool | None, after: AfterTool | None) -> ToolResult:
    """Run one call to the end. Every failure becomes an ``Error: ...`` text for the model; only
    ``BaseException``s that are not ``Exception`` (Ctrl-C, ``SystemExit``) escape."""
    prepared = prepare_call(call, toolbox, before)
    if isinstance(prepared, ToolResult):
        result = prepared
    else:
        tool, kwargs = prepared
        try:
            result = finish_call(call, tool(**kwargs))
        except ReentrantCallError:
            raise  # the caller's mistake, not the model's: it fails the turn
        except Exception as exc:
            result = finish_call(call, error=exc)
    if after is not None:
        not_awaitable("after_tool", after(result))
    return result


async def arun_call(call: ToolCall, toolbox: Toolbox, before: BeforeTool | None, after: AfterTool | None) -> ToolResult:
    """`run_call` for the async drivers: async tools and hooks are awaited, sync tools run in a worker thread."""
    import asyncio

    prepared = prepare_call(call, toolbox, None)
    if not isinstance(prepared, ToolResult) and before is not None:
        verdict = before(call)
        prepared = judge(call, await verdict if inspect.isawaitable(verdict) else verdict) or prepared
    if isinstance(prepared, ToolResult):
        result = prepared
    else:
        tool, kwargs = prepared
        try:
            if tool.is_async:
                value = await tool.start(**kwargs)
            else:
                value = await asyncio.to_thread(tool.start, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
            result = finish_call(call, value)
        except ReentrantCallError:
            raise
        except Exception as exc:
            result = finish_call(call, error=exc)
    if after is not None:
        done = after(result)
        if inspect.isawaitable(done):
            await done
    return result


def tool_message(result: ToolResult) -> dict[str, Any]:
    """The history entry for a result, in the seed's key order."""
    return {"tool_call_id": result.call.id, "role": "tool", "content": result.content}
