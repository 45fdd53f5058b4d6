"""What the double answers: scripted replies, and how each becomes OpenRouter's JSON and SSE bytes."""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

PRICES = (0.000001, 0.000002)
"""Default dollars per prompt token and per completion token used for ``usage.cost``."""


def generation_id() -> str:
    """An id shaped like OpenRouter's: ``gen-<unix seconds>-<20 alphanumerics>``."""
    tail = "".join(random.choices(string.ascii_letters + string.digits, k=20))
    return f"gen-{int(time.time())}-{tail}"


def count_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: words in every text, plus 3 per message."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    if isinstance(value, dict):
        if "role" in value:
            return 3 + count_tokens(value.get("content")) + count_tokens(value.get("tool_calls"))
        if value.get("type") == "text":
            return count_tokens(value.get("text"))
        if "function" in value:
            fn = value["function"]
            return 1 + count_tokens(fn.get("arguments") or "")
        return 1
    return 0


@dataclass
class ToolCall:
    """A tool call the double's model makes: ``ToolCall("get_time", {"tz": "UTC"})``.

    ``arguments`` may be a dict (sent as JSON), a raw string (sent as is, e.g. broken JSON), or ``None`` to leave
    the ``arguments`` key out entirely (as OpenRouter does for some no-argument calls).
    """

    name: str
    arguments: Mapping[str, Any] | str | None = field(default_factory=dict)
    id: str | None = None

    def wire(self, index: int) -> dict[str, Any]:
        function: dict[str, Any] = {"name": self.name}
        if self.arguments is not None:
            function["arguments"] = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        call_id = self.id or f"call_{index}_{''.join(random.choices(string.ascii_letters, k=12))}"
        return {"id": call_id, "type": "function", "index": index, "function": function}


@dataclass
class Text:
    """A completion: text and/or tool calls.

    Args:
        content: the answer text.
        tool_calls: tool calls to make (``ToolCall`` objects); ``finish_reason`` becomes ``"tool_calls"``.
        delay: seconds the "model" works before answering (keep-alive bytes are sent meanwhile).
        usage: the ``usage`` object to report; by default counted from the request and priced.
        model: the model to report as having answered (defaults to the one requested).
        provider: the provider name to report (by default the one the request pins, else ``"OpenAI"``).
        finish_reason: defaults to ``"stop"`` (``"tool_calls"`` with tool calls).
        extra_message: extra keys for the message (``reasoning``, ``annotations``, ``images``...).
        chunk_delay: seconds between stream chunks (to watch text arrive, or to cancel mid-stream).
        drop_after: close the connection abruptly after this many stream chunks (or, not streaming, halfway
            through the body), as a failing network would.
    """

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    delay: float | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    provider: str | None = None
    finish_reason: str | None = None
    extra_message: dict[str, Any] = field(default_factory=dict)
    chunk_delay: float = 0.0
    drop_after: int | None = None


@dataclass
class Error:
    """An error reply in OpenRouter's envelope.

    Args:
        status: the HTTP status (and ``error.code``).
        message: ``error.message``.
        metadata: ``error.metadata`` (e.g. ``{"provider_name": "Google", "raw": "..."}``).
        retry_after: sends a ``Retry-After`` header (seconds).
        in_body: send HTTP 200 with whitespace keep-alives and then the error envelope, as OpenRouter does when
            a provider fails late in a non-streaming request.
        headers: more response headers.
        delay: seconds before answering.
    """

    status: int
    message: str = "Provider returned error"
    metadata: dict[str, Any] | None = None
    retry_after: float | None = None
    in_body: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    delay: float | None = None

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "code": self.status}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error, "user_id": "user_2double0000000000000000"}


@dataclass
class Raw:
    """Exact bytes to answer with (a captured sample, a malformed body...)."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    delay: float | None = None


Script = Text | Error | Raw
Responder = Callable[[dict[str, Any]], "Script | str"]


def as_script(item: Script | str | Responder, request: dict[str, Any]) -> Script:
    """Resolve a queued item (a reply, a plain string, or a function of the request body) to a reply."""
    if callable(item) and not isinstance(item, (Text, Error, Raw)):
        item = item(request)
    if isinstance(item, str):
        return Text(item)
    if not isinstance(item, (Text, Error, Raw)):
        raise TypeError(f"A scripted reply must be Text, Error, Raw or str, got {type(item).__name__}")
    return item


def echo(request: dict[str, Any]) -> Text:
    """The default answer when nothing is queued, like a model that plays along with any request:

    - function tools offered and the last message is the user's: call every function tool once, with arguments
      made from its parameter schema;
    - a ``json_schema`` response format: JSON that fits the schema;
    - otherwise ``"You said: <last user text>"`` (after tool results: ``"... Tool results: r1; r2"``).
    """
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    functions = [t["function"] for t in request.get("tools") or [] if t.get("type") == "function"]
    if functions and last.get("role") == "user" and request.get("tool_choice") != "none":
        return Text(tool_calls=[ToolCall(f["name"], example(f.get("parameters") or {})) for f in functions])
    response_format = request.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {}
        return Text(json.dumps(example(schema)))
    if response_format.get("type") == "json_object" and isinstance(response_format.get("schema"), dict):
        return Text(json.dumps(example(response_format["schema"])))  # llama.cpp's form
    said = next((_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), None)
    if said is None:
        return Text("Hello from the OpenRouter double.")
    answer = f"You said: {said}"
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, _text(message.get("content")))
    return Text(f"{answer} Tool results: {'; '.join(results)}" if results else answer)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")


def example(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None) -> Any:
    """A small value that fits a JSON schema (required properties only, first enum value, first union arm)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return example((root.get("$defs") or root.get("definitions") or {}).get(name, {}), root)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            arms = [a for a in schema[key] if a.get("type") != "null"] or schema[key]
            return example(arms[0], root)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        return {k: example(properties[k], root) for k in schema.get("required", []) if k in properties}
    if kind == "array":
        if "prefixItems" in schema:
            return [example(s, root) for s in schema["prefixItems"]]
        return [example(schema["items"], root)] if isinstance(schema.get("items"), dict) else []
    formats = {
        "date-time": "2025-01-01T00:00:00+00:00",
        "date": "2025-01-01",
        "time": "12:00:00",
        "duration": "PT1H",
        "uuid": "00000000-0000-4000-8000-000000000000",
        "decimal": "1.5",
        "path": "example.txt",
    }
    text = "ZXhhbXBsZQ==" if schema.get("contentEncoding") == "base64" else "example"
    simple = {
        "string": formats.get(str(schema.get("format", "")), text),
        "integer": 1,
        "number": 1.5,
        "boolean": True,
        "null": None,
    }
    return simple.get(str(kind), schema.get("default"))


def usage_for(request: dict[str, Any], reply: Text, prices: tuple[float, float] = PRICES) -> dict[str, Any]:
    """A full 2026-style usage object counted from the request and the reply."""
    prompt = count_tokens(request.get("messages") or [])
    completion = max(
        1,
        count_tokens(reply.content)
        + sum(
            1 + count_tokens(json.dumps(t.arguments) if not isinstance(t.arguments, str) else t.arguments)
            for t in reply.tool_calls
        ),
    )
    prompt_cost, completion_cost = prompt * prices[0], completion * prices[1]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": round(prompt_cost + completion_cost, 12),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0, "video_tokens": 0},
        "cost_details": {
            "upstream_inference_cost": round(prompt_cost + completion_cost, 12),
            "upstream_inference_prompt_cost": round(prompt_cost, 12),
            "upstream_inference_completions_cost": round(completion_cost, 12),
        },
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": 0, "audio_tokens": 0},
    }


@dataclass
class Rendered:
    """A reply resolved against its request: ids, served model, tool calls and usage fixed once."""

    reply: Text
    request: dict[str, Any]
    id: str
    model: str
    usage: dict[str, Any] | None
    calls: list[dict[str, Any]]
    provider: str = "OpenAI"
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def finish_reason(self) -> str:
        return self.reply.finish_reason or ("tool_calls" if self.calls else "stop")

    def completion(self) -> dict[str, Any]:
        """The non-streaming body, in the key order OpenRouter used in 2026."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": self.reply.content,
            "refusal": None,
            "reasoning": None,
            **self.reply.extra_message,
        }
        if self.calls:
            message["tool_calls"] = self.calls
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "provider": self.provider,
            "system_fingerprint": None,
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                    "native_finish_reason": self.finish_reason,
                    "message": message,
                }
            ],
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body

    def chunks(self, usage_style: str = "repeat-finish") -> Iterator[dict[str, Any]]:
        """The streaming chunks: a role chunk, content pieces, tool-call deltas, the finish and the usage."""
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "provider": self.provider,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            return {
                **head,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", **delta},
                        "finish_reason": finish,
                        "native_finish_reason": finish,
                    }
                ],
                **extra,
            }

        yield chunk({"content": ""})
        extra = self.reply.extra_message
        for piece in _pieces(extra.get("reasoning") or ""):  # reasoning first, as reasoning models send it
            yield chunk({"content": "", "reasoning": piece})
        for block in extra.get("reasoning_details") or []:
            yield chunk({"content": "", "reasoning_details": [block]})
        for note in extra.get("annotations") or []:  # citations arrive one per chunk, before the text
            yield chunk({"content": "", "annotations": [note]})
        for piece in _pieces(self.reply.content):
            yield chunk({"content": piece})
        if extra.get("images"):  # generated images come whole, in one delta
            yield chunk({"content": "", "images": extra["images"]})
        for call in self.calls:
            arguments = call["function"].get("arguments", "")
            first = {
                "index": call["index"],
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            yield chunk({"content": None, "tool_calls": [first]})
            for piece in _pieces(arguments, size=8):
                yield chunk(
                    {"content": None, "tool_calls": [{"index": call["index"], "function": {"arguments": piece}}]}
                )
        finish = chunk({"content": ""}, self.finish_reason)
        yield finish
        if self.usage is None:
            return
        if usage_style == "empty-choices":
            yield {**head, "choices": [], "usage": self.usage}
        elif usage_style == "null-finish":
            yield chunk({"content": ""}, None, usage=self.usage)
        else:
            yield {**finish, "service_tier": "default", "usage": self.usage}


def _pieces(text: str, size: int = 0) -> Iterator[str]:
    """Split text into stream pieces: words (keeping their spaces), or fixed-size slices."""
    if not text:
        return
    if size:
        for i in range(0, len(text), size):
            yield text[i : i + size]
        return
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            yield text[start:i]
            start = i
    yield text[start:]
