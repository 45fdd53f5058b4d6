"""OpenRouter's wire format, as pure functions: request bodies out, replies in.

Nothing here does I/O or imports anything heavy. It knows the shapes OpenRouter has sent over time (see
``openrouter-protocol.md``): leading whitespace before JSON bodies, errors inside HTTP 200 bodies, tool calls
without ``arguments``, three forms of the final usage chunk in streams.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._retry import TRANSIENT_402, retry_after_seconds
from .errors import (
    APIResponseError,
    APIStatusError,
    BadRequestError,
    ContextWindowError,
    PaymentRequiredError,
    RateLimitError,
    status_error_class,
)

USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")


class Response(dict):  # type: ignore[type-arg]
    """A JSON object from the server, readable as attributes: ``r.choices[0].message.content``.

    It is a plain ``dict`` underneath (``json.dumps`` works, ``r["usage"]["cost"]`` works). Attribute access
    returns ``None`` for keys the server did not send (like the optional fields of the ``openai`` SDK), so
    ``r.choices[0].message.images`` is ``None`` on a text-only reply. Nested objects and lists of objects come
    back wrapped the same way.
    """

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _wrap(self.get(name))

    def __dir__(self) -> Iterable[str]:
        return [*super().__dir__(), *(k for k in self if isinstance(k, str))]

    # The conversions of the openai SDK's response objects, so code written for them keeps working.
    def to_dict(self, *, exclude_none: bool = False, **options: Any) -> dict[str, Any]:
        """A deep copy as plain dicts and lists (JSON data). ``exclude_none=True`` drops ``null`` fields.

        The data is exactly what the server sent, under the API's names, so the openai SDK's ``mode``,
        ``use_api_names``, ``exclude_unset``, ``exclude_defaults`` and ``warnings`` change nothing."""
        _check_dump_options("to_dict", options)
        return _plain(self, exclude_none)  # type: ignore[no-any-return]

    def to_json(self, *, indent: int | None = 2, exclude_none: bool = False, **options: Any) -> str:
        """`to_dict` as JSON text, indented by 2 like the openai SDK's (``indent=None``: one line)."""
        _check_dump_options("to_json", options)
        return json.dumps(self.to_dict(exclude_none=exclude_none), indent=indent, ensure_ascii=False)

    def model_dump(self, *, exclude_none: bool = False, **options: Any) -> dict[str, Any]:
        """pydantic's name for `to_dict`."""
        _check_dump_options("model_dump", options)
        return self.to_dict(exclude_none=exclude_none)

    def model_dump_json(self, *, indent: int | None = None, exclude_none: bool = False, **options: Any) -> str:
        """pydantic's name for `to_json`: one line unless ``indent`` is given, like pydantic."""
        _check_dump_options("model_dump_json", options)
        return self.to_json(indent=indent, exclude_none=exclude_none)


_SAME_DUMP = frozenset({"mode", "use_api_names", "by_alias", "exclude_unset", "exclude_defaults", "warnings"})
"""Options of the openai SDK's / pydantic's dumps that cannot change a `Response`'s data."""


def _check_dump_options(method: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _SAME_DUMP)
    if unknown:
        raise TypeError(
            f"Response.{method}() does not take {', '.join(k + '=' for k in unknown)}; filter the returned dict instead"
        )


def _plain(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, exclude_none) for k, v in value.items() if not (exclude_none and v is None)}
    if isinstance(value, list):
        return [_plain(v, exclude_none) for v in value]
    return value


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Response):
        return Response(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


@dataclass
class Reply:
    """One completion, parsed: what the turn engine and ``Chat`` need, plus the raw body."""

    message: dict[str, Any]
    """The assistant message to append to history (plain JSON-ready dict)."""
    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    model: str | None = None
    provider: str | None = None
    id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- requests


def build_body(model: str, messages: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of a ``POST /chat/completions``.

    ``options`` are request fields (``temperature``, ``provider``...); ``None`` values are dropped so a caller can
    unset a default by passing ``None``. An ``extra_body`` mapping inside ``options`` is merged in last.
    """
    body: dict[str, Any] = {"model": model, "messages": [_sendable(m) for m in messages]}
    extra = options.get("extra_body")
    for key, value in options.items():
        if value is not None and key != "extra_body":
            body[key] = value
    if extra:
        body.update(extra)
    return body


WRITER = "model"
"""The key of an assistant message in history naming the model that wrote it, when a fallback answered for the
chat's slug (``fallbacks=``). History keeps it; `build_body` leaves it out of what is sent."""


def _sendable(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` as sent: without irouter's own `WRITER` key (a copy only when it has one)."""
    if isinstance(message, dict) and WRITER in message and message.get("role") == "assistant":
        return {k: v for k, v in message.items() if k != WRITER}
    return message


def user_message(content: Any) -> dict[str, Any]:
    """A user message with ``content`` as given (a string or a list of content parts)."""
    return {"role": "user", "content": content}


# --------------------------------------------------------------------------------------------- responses


def loads(data: bytes | str, *, model: str | None = None) -> Any:
    """Parse a JSON body; OpenRouter's leading keep-alive whitespace is fine, anything else non-JSON raises."""
    try:
        return json.loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        snippet = text.strip()[:300] or "(empty body)"
        raise APIResponseError(f"The server's answer is not valid JSON: {snippet!r}", model=model, body=text) from None


def error_from_body(
    status: int,
    body: Any,
    *,
    model: str | None = None,
    retry_after: float | None = None,
    text: str = "",
    headers: Mapping[str, str] | None = None,
) -> APIStatusError:
    """Turn an error response (OpenRouter's ``{"error": {code, message, metadata}}`` or anything else) into the
    matching exception. ``status`` is the HTTP status; the class follows ``error.code`` when it is numeric."""
    err = body.get("error") if isinstance(body, dict) else None
    metadata: dict[str, Any]
    if isinstance(err, dict):
        code = err.get("code", status)
        message = str(err.get("message") or "(no message)")
        metadata = err["metadata"] if isinstance(err.get("metadata"), dict) else {}
    else:
        code = status
        message = (str(err) if err else "") or text.strip()[:500] or f"HTTP {status}"
        metadata = {}
    cls = status_error_class(status if status >= 400 else code)
    if metadata.get("reason") == TRANSIENT_402 and cls is PaymentRequiredError:
        cls = RateLimitError  # too many paid requests in flight: wait and retry, like a 429
    if retry_after is None and isinstance(metadata.get("headers"), dict):
        retry_after = retry_after_seconds(metadata["headers"].get("Retry-After"))
    window = context_window(message) if cls is BadRequestError else None
    if window is not None:
        return ContextWindowError(
            message,
            limit=window[0],
            estimate=window[1],
            sent=True,
            status=status,
            code=code,
            metadata=metadata,
            model=model,
            generation_id=body.get("id") if isinstance(body, dict) else None,
            body=body,
            headers=headers,
        )
    return cls(
        message,
        status=status,
        code=code,
        metadata=metadata,
        model=model,
        generation_id=body.get("id") if isinstance(body, dict) else None,
        retry_after=retry_after,
        body=body,
        headers=headers,
    )


_WINDOW = re.compile(r"maximum context length is (\d+) tokens", re.IGNORECASE)
_REQUESTED = re.compile(r"requested about (\d+) tokens", re.IGNORECASE)


def context_window(message: str) -> tuple[int | None, int | None] | None:
    """``(limit, requested)`` from a provider's context-length error message ("This endpoint's maximum context
    length is N tokens. However, you requested about M tokens (...)", both captured wordings), ``None`` when the
    message is about something else. A number the message leaves out is ``None``."""
    limit = _WINDOW.search(message)
    if limit is None and "context length" not in message.lower() and "context window" not in message.lower():
        return None
    requested = _REQUESTED.search(message)
    return (int(limit.group(1)) if limit else None, int(requested.group(1)) if requested else None)


def normalize_tool_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call as history keeps it: ``{'id', 'type': 'function', 'function': {'name', 'arguments'}}``.

    A missing or null ``arguments`` (OpenRouter sends that for no-argument calls) becomes ``"{}"``; the
    stream-only ``index`` is dropped.
    """
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": call.get("id") or "",
        "type": call.get("type") or "function",
        "function": {"name": function.get("name") or "", "arguments": arguments},
    }


KEPT_FIELDS = ("images", "annotations", "reasoning", "reasoning_details")
"""Message fields kept in history when the server sends them non-empty: generated images (so an editing
conversation continues), annotations (citations, parsed files: OpenRouter skips re-parsing when they come back),
reasoning text and ``reasoning_details`` (to be sent back unmodified for multi-turn reasoning with tools)."""


def assistant_message(
    content: str, tool_calls: list[dict[str, Any]], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The assistant message appended to history: the seed's two keys, plus ``tool_calls`` when there are some,
    plus the `KEPT_FIELDS` the server sent (as they were sent)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if extra:
        for key in KEPT_FIELDS:
            if extra.get(key):
                message[key] = extra[key]
    return message


def parse_completion(body: Any, *, model: str | None = None) -> Reply:
    """Read a non-streaming completion body into a `Reply`.

    Raises the matching `APIStatusError` when the body is an error envelope (OpenRouter sends those with HTTP 200
    when a provider fails after the keep-alive bytes went out) or when the choice ended with
    ``finish_reason: "error"``; raises `APIResponseError` when it is not a completion at all.
    """
    if not isinstance(body, dict):
        raise APIResponseError(f"Expected a JSON object, got {type(body).__name__}", model=model, body=str(body))
    if body.get("error"):
        raise error_from_body(200, body, model=model)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise APIResponseError("The server's answer has no choices", model=model, body=json.dumps(body)[:1000])
    choice = choices[0]
    if choice.get("finish_reason") == "error" or choice.get("error"):
        err = choice.get("error") or {"message": "The provider failed while generating", "code": 502}
        raise error_from_body(200, {"error": err, "id": body.get("id")}, model=model)
    msg = choice.get("message") or {}
    content = msg.get("content")
    text = content if isinstance(content, str) else _parts_text(content)
    tool_calls = [normalize_tool_call(tc) for tc in msg.get("tool_calls") or []]
    return Reply(
        message=assistant_message(text, tool_calls, msg),
        content=text,
        tool_calls=tool_calls,
        usage=body.get("usage") if isinstance(body.get("usage"), dict) else None,
        finish_reason=choice.get("finish_reason"),
        model=body.get("model"),
        provider=body.get("provider"),
        id=body.get("id"),
        raw=body,
    )


def _parts_text(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def add_usage(total: dict[str, int], usage: Mapping[str, Any] | None) -> None:
    """Add a response's token counts to a running ``{'prompt_tokens', 'completion_tokens', 'total_tokens'}``."""
    if not usage:
        return
    for key in USAGE_KEYS:
        value = usage.get(key)
        if isinstance(value, (int, float)):
            total[key] += int(value)
    if not isinstance(usage.get("total_tokens"), (int, float)):
        total["total_tokens"] += int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)


def zero_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


# --------------------------------------------------------------------------------------------- streams


class SSEDecoder:
    """Incremental server-sent-events decoding: feed lines, get each event's ``data`` when its blank line arrives.

    Comment lines (``: OPENROUTER PROCESSING``) and other fields are skipped; multi-line data is joined with
    newlines as the SSE spec says. ``done`` turns true at ``data: [DONE]``.
    """

    def __init__(self) -> None:
        self.data: list[str] = []
        self.done = False

    def feed(self, line: str) -> str | None:
        line = line.rstrip("\r\n")
        if line:
            if not line.startswith(":"):
                name, _, value = line.partition(":")
                if name == "data":
                    self.data.append(value[1:] if value.startswith(" ") else value)
            return None
        return self.flush()

    def flush(self) -> str | None:
        if not self.data:
            return None
        payload = "\n".join(self.data)
        self.data = []
        if payload.strip() == "[DONE]":
            self.done = True
            return None
        return payload


END = "[DONE]"
"""The key of the chunk the transport adds when the stream said ``data: [DONE]`` (``{END: True}``): the answer
is complete even if no chunk carried a ``finish_reason``. A stream that stops without it was cut off."""


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, one per event, ``[DONE]`` excluded."""
    decoder = SSEDecoder()
    for line in lines:
        payload = decoder.feed(line)
        if decoder.done:
            return
        if payload is not None:
            yield payload
    payload = decoder.flush()
    if payload is not None:
        yield payload


def completion_as_chunk(body: Any, model: str | None = None) -> dict[str, Any]:
    """A whole (non-streaming) completion as one stream chunk, for servers that answer a stream request with
    plain JSON. Error bodies raise, as in `parse_completion`."""
    reply = parse_completion(body, model=model)
    message = dict(body["choices"][0].get("message") or {})
    message["content"] = reply.content
    message["tool_calls"] = [{**call, "index": i} for i, call in enumerate(reply.tool_calls)]
    head = {k: body[k] for k in ("id", "model", "provider", "created") if k in body}
    return {
        **head,
        "choices": [{"index": 0, "delta": message, "finish_reason": reply.finish_reason}],
        "usage": reply.usage,
        END: True,  # a whole body is a complete answer
    }


def _merge_details(details: list[dict[str, Any]], delta: Mapping[str, Any]) -> None:
    """Merge one streamed ``reasoning_details`` block: pieces of the same block (same ``index`` and ``type``)
    are joined (``text``/``summary``/``data`` appended, other fields taken from the newest piece)."""
    index = delta.get("index")
    for block in details:
        if index is not None and block.get("index") == index and block.get("type") == delta.get("type"):
            for key, value in delta.items():
                if key in ("text", "summary", "data") and isinstance(value, str):
                    block[key] = (block.get(key) or "") + value
                elif value is not None:
                    block[key] = value
            return
    details.append(dict(delta))


class StreamAccumulator:
    """Merges ``chat.completion.chunk`` objects into the `Reply` a non-streaming call would have given.

    Feed chunks in order with `add`, which returns the text each chunk adds. Tool-call deltas are merged by
    ``index`` (arguments concatenated); reasoning text is concatenated and ``reasoning_details`` blocks merged;
    annotations and images are collected; usage is taken from whichever chunk carries it (a choice with a null
    finish, an empty ``choices`` list, or a repeated finish chunk); the first non-null ``finish_reason`` wins.
    A chunk with a top-level ``error`` (or a choice finishing with ``"error"``) raises the matching
    `APIStatusError` with the text so far on ``.partial_text`` and any usage on ``.usage``.
    """

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.done = False
        """The stream said ``[DONE]`` (see `END`)."""
        self.meta: dict[str, Any] = {}
        self.reasoning: list[str] = []
        self.details: list[dict[str, Any]] = []
        self.annotations: list[Any] = []
        self.images: list[Any] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def complete(self) -> bool:
        """The answer ended as a whole one does: a ``finish_reason`` arrived, or the stream said ``[DONE]`` (a
        server may leave the reason out, as it may without streaming)."""
        return self.finish_reason is not None or self.done

    def add(self, chunk: Mapping[str, Any]) -> str:
        if chunk.get(END) is True:
            self.done = True
        for key in ("id", "model", "provider", "created"):
            if chunk.get(key) is not None:
                self.meta.setdefault(key, chunk[key])
        if isinstance(chunk.get("usage"), dict):
            self.usage = dict(chunk["usage"])
        added = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if isinstance(piece, str) and piece:
                added.append(piece)
            for call in delta.get("tool_calls") or []:
                self._merge_call(call)
            if isinstance(delta.get("reasoning"), str):
                self.reasoning.append(delta["reasoning"])
            for block in delta.get("reasoning_details") or []:
                if isinstance(block, dict):
                    _merge_details(self.details, block)
            self.annotations.extend(delta.get("annotations") or [])
            self.images.extend(delta.get("images") or [])
            if choice.get("finish_reason") and self.finish_reason is None:
                self.finish_reason = choice["finish_reason"]
        self.parts.extend(added)
        error = chunk.get("error") or next(
            (
                c.get("error") or {"message": "The provider failed mid-stream", "code": 502}
                for c in chunk.get("choices") or []
                if c.get("finish_reason") == "error"
            ),
            None,
        )
        if error:
            raise self.failure(error_from_body(200, {"error": error, "id": chunk.get("id")}, model=self.model))
        return "".join(added)

    def failure(self, exc: Exception) -> Exception:
        """``exc`` with what the stream had delivered attached: ``.partial_text`` and ``.usage``."""
        exc.partial_text = self.text  # type: ignore[attr-defined]
        exc.usage = self.usage  # type: ignore[attr-defined]
        return exc

    def _merge_call(self, delta: Mapping[str, Any]) -> None:
        index = delta.get("index", len(self.calls))
        call = self.calls.setdefault(index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
        if delta.get("id"):
            call["id"] = delta["id"]
        if delta.get("type"):
            call["type"] = delta["type"]
        function = delta.get("function") or {}
        if function.get("name"):
            call["function"]["name"] += function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]

    def reply(self) -> Reply:
        """The complete reply once the stream has ended."""
        tool_calls = [normalize_tool_call(self.calls[i]) for i in sorted(self.calls)]
        text = self.text
        extra = {
            "reasoning": "".join(self.reasoning) or None,
            "reasoning_details": self.details,
            "annotations": self.annotations,
            "images": self.images,
        }
        message = assistant_message(text, tool_calls, extra)
        raw = {
            **self.meta,
            "object": "chat.completion",
            "usage": self.usage,
            "choices": [{"index": 0, "finish_reason": self.finish_reason, "message": dict(message)}],
        }
        return Reply(
            message=message,
            content=text,
            tool_calls=tool_calls,
            usage=self.usage,
            finish_reason=self.finish_reason,
            model=self.meta.get("model"),
            provider=self.meta.get("provider"),
            id=self.meta.get("id"),
            raw=raw,
        )


# --------------------------------------------------------------------------------------------- encoding

BIG_STRING = 64 * 1024
"""Strings this long (base64 attachments) are JSON-encoded once and shared by every request that sends them."""
_PIECE = 64 * 1024
_encoded: dict[int, tuple[str, bytes]] = {}
_encoded_lock = threading.Lock()
_ENCODED_BYTES = 64 * 1024 * 1024
"""At most this much encoded text is kept (oldest out first): the cache holds the strings too, so it must not
keep the attachments of many finished chats alive."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _big(value: str) -> bytes:
    """The JSON encoding of a big string, made once and reused by every request that sends it (strings are
    immutable, so the id is a safe key while the entry holds the string). At most `_ENCODED_BYTES` are kept."""
    key = id(value)
    with _encoded_lock:
        hit = _encoded.get(key)
        if hit is not None and hit[0] is value:
            return hit[1]
    data = _dumps(value)
    with _encoded_lock:
        _encoded[key] = (value, data)
        held = sum(len(d) + len(s) for s, d in _encoded.values())
        while held > _ENCODED_BYTES and len(_encoded) > 1:
            old_text, old_data = _encoded.pop(next(iter(_encoded)))
            held -= len(old_text) + len(old_data)
    return data


def _has_big(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) >= BIG_STRING
    if isinstance(value, dict):
        return any(_has_big(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_big(v) for v in value)
    return False


def _pieces(value: Any, out: list[bytes]) -> None:
    """Append the JSON encoding of ``value`` to ``out``, big strings as shared pieces."""
    if isinstance(value, str) and len(value) >= BIG_STRING:
        out.append(_big(value))
    elif isinstance(value, dict) and _has_big(value):
        out.append(b"{")
        for i, (key, item) in enumerate(value.items()):
            out.append((b"," if i else b"") + _dumps(str(key)) + b":")
            _pieces(item, out)
        out.append(b"}")
    elif isinstance(value, list) and _has_big(value):
        out.append(b"[")
        for i, item in enumerate(value):
            if i:
                out.append(b",")
            _pieces(item, out)
        out.append(b"]")
    else:
        out.append(_dumps(value))


def encode_body(body: Mapping[str, Any]) -> bytes | list[bytes]:
    """A request body as JSON: one ``bytes``, or (when messages carry big attachments) a list of pieces in which
    each big string is a piece shared with every other request sending it. Sending the pieces one after another
    keeps memory proportional to the attachments, not to attachments x models x turns."""
    messages = body.get("messages")
    content_lists = [m.get("content") for m in messages or [] if isinstance(m, dict)]
    if not any(isinstance(c, list) and _has_big(c) for c in content_lists):
        return _dumps(body)
    out: list[bytes] = []
    _pieces(dict(body), out)
    return out


def iter_pieces(pieces: list[bytes]) -> Iterator[bytes | memoryview]:
    """The pieces in slices of 64 KiB, so the HTTP layer never copies a whole attachment at once."""
    for piece in pieces:
        if len(piece) <= _PIECE:
            yield piece
        else:
            view = memoryview(piece)
            for start in range(0, len(piece), _PIECE):
                yield view[start : start + _PIECE]
