"""Every captured OpenRouter sample (``tests/data/openrouter``) through irouter's client parsing.

Each file is read exactly as captured and checked against values copied from it by hand (texts, ids, tool calls,
usage and cost, provider, error class/status/message/metadata), both through the pure parsers of ``irouter._wire``
and, for a representative set, over real HTTP through the loopback double (``Raw`` sends the captured bytes).
``test_every_sample_file_is_covered`` fails when a sample file appears that no table below mentions.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from irouter import (
    APIStatusError,
    BadRequestError,
    Call,
    Chat,
    ContextWindowError,
    RateLimitError,
    Response,
    get_all_models,
    list_models,
)
from irouter._wire import (
    StreamAccumulator,
    add_usage,
    build_body,
    error_from_body,
    loads,
    parse_completion,
    sse_data,
    zero_usage,
)
from irouter.testing import OpenRouterDouble, Raw
from irouter.testing._replies import generation_id
from irouter.testing._server import KEEPALIVE

from .conftest import SAMPLES

# --------------------------------------------------------------------------------------------- helpers


class Prefix(str):
    """An expected string value the actual one must start with (for long or truncated values)."""

    __slots__ = ()


def sample_bytes(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample_bytes(name))


def dig(value: Any, path: str) -> Any:
    """Follow a dotted path; integers index lists, names use attribute access when ``value`` is a Response."""
    for part in path.split("."):
        if part.isdigit():
            value = value[int(part)]
        elif isinstance(value, Response):
            value = getattr(value, part)
        else:
            value = value.get(part)
    return value


def check_value(actual: Any, expected: Any, what: str) -> None:
    if isinstance(expected, Prefix):
        assert isinstance(actual, str), what
        assert actual.startswith(expected), f"{what}: {actual[:80]!r}"
    elif expected is None or isinstance(expected, bool):
        assert actual is expected, what  # None: the key was not sent at all
    else:
        assert type(actual) is type(expected), what
        assert actual == expected, what


def check_content(actual: str, expected: str | tuple[str, str, int]) -> None:
    if isinstance(expected, tuple):
        start, end, length = expected
        assert actual.startswith(start)
        assert actual.endswith(end)
        assert len(actual) == length
    else:
        assert actual == expected


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A tool call as irouter keeps it in history."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def data_lines(text: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, parsed here without irouter (single-line events, as captured)."""
    payloads = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("data:"):
            payload = line[len("data:") :].removeprefix(" ")
            if payload.strip() != "[DONE]":
                payloads.append(payload)
    return payloads


def content_deltas(chunks: list[dict[str, Any]]) -> str:
    """The concatenated ``delta.content`` strings of stream chunks, computed here without irouter."""
    return "".join(
        choice["delta"]["content"]
        for chunk in chunks
        for choice in chunk.get("choices") or []
        if isinstance(choice.get("delta", {}).get("content"), str)
    )


def served_body(name: str) -> bytes:
    """A non-streaming body as OpenRouter writes it: ``.raw`` files already hold the leading keep-alive
    whitespace; JSON files get one keep-alive unit in front."""
    data = sample_bytes(name)
    return data if name.endswith(".raw") else KEEPALIVE + data


def meta_status(name: str) -> int:
    """The HTTP status recorded in a ``*.response-meta.json`` file."""
    return int(sample_json(name)["status"])


# --------------------------------------------------------------------------------------------- request bodies

REQUESTS: dict[str, str] = {
    # file -> the model slug it asked for
    "chat-nonstream-cache-write-then-read.turn1.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn1.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn2.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn3.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-cache-four-breakpoints-2026-04.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-cache-gemini-system-2026-03.turn1.request.json": "google/gemini-2.5-flash",
    "chat-nonstream-cache-gemini-system-2026-03.turn2.request.json": "google/gemini-2.5-flash",
    "chat-nonstream-cache-write-then-read.turn2.request.json": "anthropic/claude-sonnet-4.6",
    "chat-nonstream-image-and-text-output.request.json": "google/gemini-2.5-flash-image-preview",
    "chat-nonstream-image-generation.request.json": "google/gemini-2.5-flash-image-preview",
    "chat-nonstream-image-url-2026-01.request.json": "anthropic/claude-sonnet-4",
    "chat-nonstream-model-fallback-provider-only.request.json": "google/gemini-2.0-flash-exp:free",
    "chat-nonstream-pdf-file-annotation.request.json": "openai/gpt-5.1-codex-mini",
    "chat-nonstream-pdf-file-url.request.json": "openai/gpt-4.1-mini",
    "chat-nonstream-pdf-sent-as-image_url-2026-01.request.json": "google/gemini-2.0-flash-001",
    "chat-nonstream-preset.request.json": "google/gemini-2.5-flash-lite",
    "chat-nonstream-reasoning-anthropic-2026-05.request.json": "anthropic/claude-sonnet-4.5",
    "chat-nonstream-tool-call-mistral.request.json": "mistralai/mistral-small",
    "chat-nonstream-tool-call-without-arguments.request.json": "anthropic/claude-sonnet-4.5",
    "chat-nonstream-tool-required-byok.turn1.request.json": "google/gemini-2.5-flash",
    "chat-nonstream-tool-required-byok.turn2.request.json": "google/gemini-2.5-flash",
    "chat-nonstream-usage-include-true-2025-11.request.json": "openai/gpt-5-mini",
    "chat-nonstream-usage-not-requested-2025-11.request.json": "openai/gpt-5-mini",
    "chat-nonstream-video-url.request.json": "google/gemini-2.5-flash",
    "chat-nonstream-web-search-annotations-2026-08.request.json": "deepseek/deepseek-chat",
    "chat-stream-basic-text-2025-08.request.json": "openai/gpt-4o",
    "chat-stream-final-usage-empty-choices-2026-03.request.json": "anthropic/claude-sonnet-4.6",
    "chat-stream-final-usage-repeats-finish-2026-08.request.json": "openai/gpt-4.1-mini",
    "chat-stream-image-generation.request.json": "google/gemini-2.5-flash-image-preview",
    "chat-stream-image-input-2025-08.request.json": "anthropic/claude-3.5-sonnet",
    "chat-stream-midstream-error-2025-11.request.json": "minimax/minimax-m2:free",
    "chat-stream-model-fallback-provider-only-2025-11.request.json": "google/gemini-2.0-flash-exp:free",
    "chat-stream-reasoning-anthropic-2025-12.request.json": "anthropic/claude-sonnet-4.5",
    "chat-stream-thinking-variant-2026-01.request.json": "anthropic/claude-3.7-sonnet:thinking",
    "chat-stream-tool-call-2025-08.turn1.request.json": "openai/gpt-4.1-mini",
    "chat-stream-tool-call-2025-08.turn2.request.json": "openai/gpt-4.1-mini",
    "chat-stream-web-search-annotations-2026-08.request.json": "deepseek/deepseek-chat",
    "error-400-anthropic-empty-content-stream-request.request.json": "anthropic/claude-sonnet-4.5",
    "error-400-image-url-fetch-failed.request.json": "anthropic/claude-sonnet-4",
    "error-400-input-must-have-1-token-stream-request.request.json": "anthropic/claude-sonnet-4",
    "error-400-provider-returned-error-anthropic.request.json": "anthropic/claude-sonnet-4",
}


def split_request(request: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    options = {k: v for k, v in request.items() if k not in ("model", "messages")}
    return request["model"], request["messages"], options


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_body_round_trips_through_build_body(name: str) -> None:
    text = sample_bytes(name).decode("utf-8")
    request = json.loads(text)
    assert request["model"] == REQUESTS[name]
    assert request["stream"] is (name.startswith("chat-stream") or "stream-request" in name)

    model, messages, options = split_request(request)
    body = build_body(model, messages, options)
    assert body == request
    assert list(body)[:2] == ["model", "messages"]
    assert json.dumps(body, sort_keys=True) == json.dumps(request, sort_keys=True)

    # plain JSON data all the way down: what history and request bodies must be
    assert json.loads(json.dumps(body)) == request
    assert all(isinstance(m, dict) and m["role"] in {"system", "user", "assistant", "tool"} for m in messages)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_request_body_is_sent_verbatim_by_call(name: str, router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """A message list and options passed to `Call` arrive as the captured body (irouter never sends ``stream``)."""
    model, messages, options = split_request(sample_json(name))
    options.pop("stream")
    ask = Call(model, **connect, **options)
    router.queue("plain answer")  # the default reply would call the sample's tools
    assert ask(messages) == "plain answer"
    expected = {k: v for k, v in sample_json(name).items() if k != "stream"}
    assert router.chat_requests[-1] == expected


# --------------------------------------------------------------------------------------------- completions

RESPONSES: dict[str, dict[str, Any]] = {
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn1.response.json": {
        "id": "gen-1773012771-kAGK501FZdViiY8GCFjy",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Anthropic",
        "finish_reason": "tool_calls",
        "content": "Let me calculate that for you!",
        "tool_calls": [tool_call("toolu_01QXVkPZYABFNhTASu9uBdEM", "calculator", '{"expression": "123 * 456"}')],
        "usage": {
            "prompt_tokens": 2572,
            "completion_tokens": 63,
            "total_tokens": 2635,
            "cost": 0.01058775,
            "prompt_tokens_details.cache_write_tokens": 2569,
            "prompt_tokens_details.cached_tokens": 0,
        },
    },
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn2.response.json": {
        "id": "gen-1773012773-jWAciV9Nta3B9i18b2ED",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Anthropic",
        "finish_reason": "length",
        "content": ("**Step-by-step breakdown:**\n\nHere's how the mult", "56,088", 211),
        "usage": {
            "prompt_tokens": 2649,
            "completion_tokens": 100,
            "total_tokens": 2749,
            "cost": 0.00256995,
            "prompt_tokens_details.cache_write_tokens": 79,
            "prompt_tokens_details.cached_tokens": 2569,
        },
    },
    "chat-nonstream-cache-anthropic-tools-ttl-2026-03.turn3.response.json": {
        "id": "gen-1773012776-5nafgQyaQZJWyIfxbWUG",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Anthropic",
        "finish_reason": "length",
        "content": ("I'll solve this step by step!\n\n**Adding 789 + 32", "rry 1\n- **Hundreds:** 7 + 3 + ", 211),
        "usage": {
            "prompt_tokens": 2572,
            "completion_tokens": 100,
            "total_tokens": 2672,
            "cost": 0.00341475,
            "prompt_tokens_details.cache_write_tokens": 329,
            "prompt_tokens_details.cached_tokens": 2240,
        },
    },
    "chat-nonstream-cache-four-breakpoints-2026-04.response.json": {
        "id": "gen-1777098359-XUJuKiy27BCP5jjvhOSq",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Google",
        "finish_reason": "stop",
        "content": ("The context consists of five repeated blocks, ea", "g any substantive information.", 153),
        "usage": {
            "prompt_tokens": 716,
            "completion_tokens": 29,
            "total_tokens": 745,
            "cost": 0.002583,
            "prompt_tokens_details.cache_write_tokens": 0,
            "prompt_tokens_details.cached_tokens": 0,
        },
    },
    "chat-nonstream-cache-gemini-system-2026-03.turn1.response.json": {
        "id": "gen-1773011493-dQNZ1wvMJgB2Ga9XKPPE",
        "model": "google/gemini-2.5-flash",
        "provider": "Google AI Studio",
        "finish_reason": "length",
        "content": ("The CAP theorem is a fundamental principle in di", "t read operation should return", 505),
        "usage": {
            "prompt_tokens": 2168,
            "completion_tokens": 100,
            "total_tokens": 2268,
            "cost": 0.0004970133333333333,
            "prompt_tokens_details.cache_write_tokens": 2161,
            "prompt_tokens_details.cached_tokens": 2161,
        },
    },
    "chat-nonstream-cache-gemini-system-2026-03.turn2.response.json": {
        "id": "gen-1773011495-wRh6oOBCzuhA1MVWXh9G",
        "model": "google/gemini-2.5-flash",
        "provider": "Google AI Studio",
        "finish_reason": "length",
        "content": ("Eventual consistency is a consistency model used", "esign and network conditions.\n", 463),
        "usage": {
            "prompt_tokens": 2167,
            "completion_tokens": 99,
            "total_tokens": 2266,
            "cost": 0.00031413,
            "prompt_tokens_details.cache_write_tokens": 0,
            "prompt_tokens_details.cached_tokens": 2161,
        },
    },
    "chat-nonstream-cache-write-then-read.turn1.response.json": {
        "id": "gen-1773011155-RKj29WPs25kxzvCwOntV",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Anthropic",
        "finish_reason": "length",
        "content": ("# Architectural Patterns in Distributed Database", "Comparative Analysis and", 407),
        "usage": {
            "prompt_tokens": 3214,
            "completion_tokens": 100,
            "total_tokens": 3314,
            "cost": 0.01355025,
            "is_byok": False,
            "prompt_tokens_details.cache_write_tokens": 3211,
            "prompt_tokens_details.cached_tokens": 0,
        },
    },
    "chat-nonstream-cache-write-then-read.turn2.response.json": {
        "id": "gen-1773011158-Ce1hHC4Gr81WIraIsgAJ",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Anthropic",
        "finish_reason": "stop",
        "content": ("Distributed database systems involve tradeoffs b", "scalability, and reliability.", 300),
        "usage": {
            "prompt_tokens": 3329,
            "completion_tokens": 53,
            "total_tokens": 3382,
            "cost": 0.00219855,
            "prompt_tokens_details.cache_write_tokens": 115,
            "prompt_tokens_details.cached_tokens": 3211,
        },
    },
    "chat-nonstream-image-and-text-output.response.truncated.json": {
        "id": "gen-1766430357-k5nSYFOODqylNPQfrEu9",
        "model": "google/gemini-2.5-flash-image-preview",
        "provider": "Google",
        "finish_reason": "stop",
        "content": ("A curious axolotl named Pip explored the vibrant", "with a soft, magical light. ", 239),
        "usage": {
            "prompt_tokens": 16,
            "completion_tokens": 1339,
            "total_tokens": 1355,
            "cost": 0.0388273,
            "completion_tokens_details.image_tokens": 1290,
        },
        "message": {
            "images.0.type": "image_url",
            "images.0.image_url.url": Prefix(
                "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAABAAAAAQACAIAAADwf7zUAAAAiXpUWHRSYXcgcHJv"
                "...<TRUNCATED: 2319608 base64 chars removed>"
            ),
        },
    },
    "chat-nonstream-image-generation.response.truncated.json": {
        "id": "gen-1764475331-y9VVjzhj0puug4BcKi74",
        "model": "google/gemini-2.5-flash-image-preview",
        "provider": "Google AI Studio",
        "finish_reason": "stop",
        "content": "Here is a cat for you! ",
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 1298,
            "total_tokens": 1301,
            "cost": None,  # not sent (no usage.include at the time)
            "completion_tokens_details.image_tokens": 1290,
        },
        "message": {
            "images.0.index": 0,
            "images.0.image_url.url": Prefix("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAABAAAAAQACAIAAADwf7zU"),
        },
    },
    "chat-nonstream-image-url-2026-01.response.raw": {
        "id": "gen-1767762639-byPo1nLGYezoxgy9LpRt",
        "model": "anthropic/claude-sonnet-4",
        "provider": "Amazon Bedrock",
        "finish_reason": "stop",
        "content": "Google logo",
        "usage": {
            "prompt_tokens": 163,
            "completion_tokens": 5,
            "total_tokens": 168,
            "cost": 0.000564,
            "is_byok": False,
            "cost_details.upstream_inference_cost": None,
            "cost_details.upstream_inference_prompt_cost": 0.000489,
            "cost_details.upstream_inference_completions_cost": 7.5e-05,
        },
        "message": {"refusal": None, "reasoning": None},
    },
    "chat-nonstream-model-fallback-provider-only.response.json": {
        "id": "gen-1759509677-MpJiZ3ZkiGU3lnbM8QKo",
        "model": "x-ai/grok-4",  # the fallback from models[], not the requested gemini slug
        "provider": "xAI",
        "finish_reason": "stop",
        "content": (
            "I'm Grok, a helpful and maximally truthful AI bu",
            "\n\nWhat can I help you with today?",
            328,
        ),
        "usage": {
            "prompt_tokens": 687,
            "completion_tokens": 240,
            "total_tokens": 927,
            "cost": None,
            "prompt_tokens_details.cached_tokens": 682,
            "completion_tokens_details.reasoning_tokens": 165,
        },
        "top": {"system_fingerprint": "fp_19e21a36c0"},
    },
    "chat-nonstream-pdf-file-annotation.response.json": {
        "id": "gen-1765242614-YgDR3Zs41nEz8rEq4RPu",
        "model": "openai/gpt-5.1-codex-mini",
        "provider": "OpenAI",
        "finish_reason": "stop",
        "content": "The PDF appears to be a dummy placeholder file.",
        "usage": {
            "prompt_tokens": 31,
            "completion_tokens": 80,
            "total_tokens": 111,
            "cost": 0.00216775,
            "completion_tokens_details.reasoning_tokens": 64,
        },
        "message": {
            "reasoning": "**Assessing dummy PDF file**",
            "annotations.0.type": "file",
            "annotations.0.file.name": "filename.pdf",
            "annotations.0.file.hash": "a1e01852b473a959e3d5234eea9ca3489acec9dfb82938d51f1a45d980a23fe5",
            "annotations.0.file.content.1.text": "# Dummy PDF file",
            "reasoning_details.1.type": "reasoning.encrypted",
            "reasoning_details.1.id": "rs_05bf8ea94da6e78901693776f7ccbc8196be12bafeee9d7d81",
        },
    },
    "chat-nonstream-pdf-file-url.response.json": {
        "id": "gen-1768331348-eU9qcMAwabVeei5U4yBG",
        "model": "openai/gpt-4.1-mini",
        "provider": "OpenAI",
        "finish_reason": "stop",
        "content": ("The main content of this document appears to be ", "or demonstration purposes.", 248),
        "usage": {"prompt_tokens": 23, "completion_tokens": 48, "total_tokens": 71, "cost": 8.6e-05},
    },
    "chat-nonstream-pdf-sent-as-image_url-2026-01.response.raw": {
        "id": "gen-1767762648-gpMQ7v2T1yjLwNu7l65B",
        "model": "google/gemini-2.0-flash-001",
        "provider": "Google AI Studio",
        "finish_reason": "stop",
        "content": "Bitcoin: A Peer-to-Peer Electronic Cash System",
        "usage": {
            "prompt_tokens": 2337,
            "completion_tokens": 11,
            "total_tokens": 2348,
            "cost": 0.0002381,
            "cost_details.upstream_inference_completions_cost": 4.4e-06,
        },
        "message": {"annotations": []},
    },
    "chat-nonstream-preset.response.json": {
        "id": "gen-1759510642-J9qupM2EtKoYTfG7ehDn",
        "model": "google/gemini-2.5-flash-lite",
        "provider": "Google",
        "finish_reason": "stop",
        "content": "Why did the train break up with the track?\n\n"
        "Because it felt like their relationship was going nowhere.",
        "usage": {"prompt_tokens": 31, "completion_tokens": 21, "total_tokens": 52, "cost": None},
    },
    "chat-nonstream-reasoning-anthropic-2026-05.response.json": {
        "id": "gen-1779474928-8Ot5WcaCbQBcu9Wvs6Up",
        "model": "anthropic/claude-4.5-sonnet-20250929",  # canonical slug, request said claude-sonnet-4.5
        "provider": "Amazon Bedrock",
        "finish_reason": "stop",
        "content": "ok",
        "usage": {
            "prompt_tokens": 43,
            "completion_tokens": 53,
            "total_tokens": 96,
            "cost": 0.000924,
            "completion_tokens_details.reasoning_tokens": 48,
        },
        "message": {
            "reasoning": Prefix('The user is asking me to reply with the single word "ok".'),
            "reasoning_details.0.format": "anthropic-claude-v1",
            "reasoning_details.0.signature": Prefix("EugCCkgIDRABGAIqQPO/3ufZc1gKugjv03ufL77WNiAsz39I93VSLf5dQy4m"),
        },
    },
    "chat-nonstream-tool-call-mistral.response.json": {
        "id": "gen-1762047030-dJUcJW4ildNGqK4UV6iJ",
        "model": "mistralai/mistral-small",
        "provider": "Mistral",
        "finish_reason": "tool_calls",
        "content": "",
        "tool_calls": [
            tool_call("3sniiMddS", "divide", '{"numerator": 123, "denominator": 456, "on_inf": "infinity"}')
        ],
        "usage": {"prompt_tokens": 134, "completion_tokens": 43, "total_tokens": 177, "cost": None},
    },
    "chat-nonstream-tool-call-without-arguments.response.json": {
        "id": "gen-1764308342-FInFdBZR9TF8jmnOwZGZ",
        "model": "anthropic/claude-sonnet-4.5",
        "provider": "Google",
        "finish_reason": "tool_calls",
        "content": "I'll search for education content for you.",
        "tool_calls": [tool_call("toolu_vrtx_015QAXScZzRDPttiPoc34AdD", "find_education_content", "{}")],
        "usage": {"prompt_tokens": 568, "completion_tokens": 48, "total_tokens": 616, "cost": None},
    },
    "chat-nonstream-tool-required-byok.turn1.response.json": {
        "id": "gen-1764791728-YEVpGoInRszZx8oZ508T",
        "model": "google/gemini-2.5-flash",
        "provider": "Google AI Studio",
        "finish_reason": "tool_calls",
        "content": "",
        "tool_calls": [
            tool_call(
                "tool_insert_level_with_spaces_3ZiChYzj8xER8HixJe7W",
                "insert_level_with_spaces",
                '{"spaces":[{"space_type":"entryway","space_name":"entryway"},'
                '{"space_name":"living_room","space_type":"living-room"},'
                '{"space_name":"garage","space_type":"garage"}],'
                '"level":{"level_type":"ground","level_name":"ground_floor"}}',
            )
        ],
        "usage": {
            "prompt_tokens": 326,
            "completion_tokens": 91,
            "total_tokens": 417,
            "cost": 0,
            "is_byok": True,
            "cost_details.upstream_inference_cost": 0.0003253,
        },
    },
    "chat-nonstream-tool-required-byok.turn2.response.json": {
        "id": "gen-1764791730-nym6GYDkejhRdrWtv8l3",
        "model": "google/gemini-2.5-flash",
        "provider": "Google AI Studio",
        "finish_reason": "tool_calls",
        "content": "",
        "tool_calls": [
            tool_call(
                "tool_final_result_HesCvwqQXZaVlFW3buU8",
                "final_result",
                '{"level_type":"ground","level_name":"ground_floor","space_count":3}',
            )
        ],
        "usage": {
            "prompt_tokens": 480,
            "completion_tokens": 33,
            "total_tokens": 513,
            "cost": 0,
            "is_byok": True,
            "cost_details.upstream_inference_cost": 0.0002265,
        },
    },
    "chat-nonstream-usage-include-true-2025-11.response.json": {
        "id": "gen-1762789734-sxYWfPfn343ZvBkw9zV9",
        "model": "openai/gpt-5-mini",
        "provider": "OpenAI",
        "finish_reason": "stop",
        "content": (
            "Here\u2019s a concise but thorough overview of Mars \u2014",
            "of exploration and planned missions.",
            5380,
        ),
        "usage": {
            "prompt_tokens": 17,
            "completion_tokens": 2177,
            "total_tokens": 2194,
            "cost": 0.00435825,
            "is_byok": False,
            "completion_tokens_details.reasoning_tokens": 960,
        },
        "message": {"reasoning": Prefix("**Exploring Mars Overview**\n\nThe user wants a comprehensive ")},
    },
    "chat-nonstream-usage-not-requested-2025-11.response.json": {
        "id": "gen-1762789695-8IngOktYUifJqeBs0mwc",
        "model": "openai/gpt-5-mini",
        "provider": "OpenAI",
        "finish_reason": "stop",
        "content": (
            "Brief summary\n- Venus is the second planet from ",
            "habitability. Which would you prefer?",
            3554,
        ),
        "usage": {
            "prompt_tokens": 17,
            "completion_tokens": 1515,
            "total_tokens": 1532,
            "cost": None,
            "is_byok": None,
            "completion_tokens_details.reasoning_tokens": 704,
        },
    },
    "chat-nonstream-video-url.response.json": {
        "id": "gen-1770461669-Ud9aX0ps0z7Vv4pX8Txi",
        "model": "google/gemini-2.5-flash",
        "provider": "Google AI Studio",
        "finish_reason": "stop",
        "content": ("This video features a giant panda in an enclosur", "frame, occasionally looking up.", 844),
        "usage": {"prompt_tokens": 0, "completion_tokens": 180, "total_tokens": 180, "cost": 0.00045},
    },
    "chat-nonstream-web-search-annotations-2026-08.response.json": {
        "id": "gen-1786680756-Fmq0SbiQ50hlHCCn30d5",
        "model": "deepseek/deepseek-chat",
        "provider": "OpenAI",
        "finish_reason": "stop",
        "content": "https://github.com/pydantic/pydantic-ai",
        "usage": {
            "prompt_tokens": 2315,
            "completion_tokens": 40,
            "total_tokens": 2355,
            "cost": 0.007637029,
            "cost_details.upstream_inference_completions_cost": 4.1148e-05,
            "server_tool_use_details.web_search_requests": 1,
            "server_tool_use_details.tool_calls_executed": 1,
        },
        "message": {
            "annotations.0.type": "url_citation",
            "annotations.0.url_citation.url": "https://github.com/pydantic/pydantic-ai",
            "annotations.0.url_citation.title": "AI Agent Framework, the Pydantic way",
            "annotations.1.url_citation.title": "",
            "annotations.4.url_citation.url": "https://github.com/pydantic/pydantic-ai/tree/refs/tags/v1.44.0",
            "annotations.4.url_citation.start_index": 0,
        },
        "top": {"service_tier": None, "system_fingerprint": None},
    },
}


@pytest.mark.parametrize("name", sorted(RESPONSES))
def test_completion_sample_parses(name: str) -> None:
    expected = RESPONSES[name]
    data = sample_bytes(name)
    if name.endswith(".raw"):
        assert data[:2] == b"\n "  # the keep-alive whitespace is still there
        assert data.lstrip()[:1] == b"{"
    body = loads(data)
    reply = parse_completion(body, model="asked/model")

    check_content(reply.content, expected["content"])
    assert reply.content == body["choices"][0]["message"]["content"]  # independently, straight from the file
    assert reply.id == expected["id"]
    assert reply.model == expected["model"]
    assert reply.provider == expected["provider"]
    assert reply.finish_reason == expected["finish_reason"]

    calls = expected.get("tool_calls", [])
    assert reply.tool_calls == calls
    for call in calls:
        assert set(call) == {"id", "type", "function"}
        json.loads(call["function"]["arguments"])  # arguments are always a JSON string
    sent = body["choices"][0]["message"]
    kept = {k: sent[k] for k in ("images", "annotations", "reasoning", "reasoning_details") if sent.get(k)}
    assert reply.message == {
        "role": "assistant",
        "content": reply.content,
        **({"tool_calls": calls} if calls else {}),
        **kept,  # images, annotations and reasoning stay on the message, exactly as sent
    }
    assert json.loads(json.dumps(reply.message)) == reply.message  # history stays plain JSON

    assert reply.usage == body["usage"]
    for path, value in expected["usage"].items():
        check_value(dig(reply.usage, path), value, f"usage.{path}")
    total = zero_usage()
    add_usage(total, reply.usage)
    assert total == {k: expected["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}

    response = Response(reply.raw)  # what Call(..., raw=True) hands out
    assert response.choices[0].message.content == reply.content
    assert response.usage.total_tokens == expected["usage"]["total_tokens"]
    for path, value in expected.get("message", {}).items():
        check_value(dig(response.choices[0].message, path), value, f"message.{path}")
    for path, value in expected.get("top", {}).items():
        check_value(dig(response, path), value, path)


def test_tool_call_without_arguments_gets_empty_object() -> None:
    name = "chat-nonstream-tool-call-without-arguments.response.json"
    body = sample_json(name)
    assert "arguments" not in body["choices"][0]["message"]["tool_calls"][0]["function"]  # as captured
    reply = parse_completion(body)
    assert reply.tool_calls[0]["function"] == {"name": "find_education_content", "arguments": "{}"}


def test_turn_one_reply_matches_what_turn_two_sent_back() -> None:
    """The assistant message irouter keeps from turn 1 is what the capturing client sent in turn 2."""
    byok = parse_completion(sample_json("chat-nonstream-tool-required-byok.turn1.response.json"))
    sent = sample_json("chat-nonstream-tool-required-byok.turn2.request.json")["messages"][1]
    assert sent["role"] == "assistant"
    assert byok.tool_calls == sent["tool_calls"]
    assert (
        sample_json("chat-nonstream-tool-required-byok.turn2.request.json")["messages"][2]["tool_call_id"]
        == byok.tool_calls[0]["id"]
    )

    cache = parse_completion(sample_json("chat-nonstream-cache-write-then-read.turn1.response.json"))
    sent = sample_json("chat-nonstream-cache-write-then-read.turn2.request.json")["messages"][2]
    assert cache.message == sent


# --------------------------------------------------------------------------------------------- completions over HTTP

HTTP_COMPLETIONS = [
    "chat-nonstream-image-url-2026-01.response.raw",
    "chat-nonstream-pdf-sent-as-image_url-2026-01.response.raw",
    "chat-nonstream-tool-call-mistral.response.json",
    "chat-nonstream-tool-call-without-arguments.response.json",
    "chat-nonstream-tool-required-byok.turn1.response.json",
    "chat-nonstream-tool-required-byok.turn2.response.json",
    "chat-nonstream-web-search-annotations-2026-08.response.json",
    "chat-nonstream-image-generation.response.truncated.json",
]


def http_status(name: str) -> int:
    meta = name.replace(".response.raw", ".response-meta.json")
    return meta_status(meta) if meta != name and (SAMPLES / meta).exists() else 200


@pytest.mark.parametrize("name", HTTP_COMPLETIONS)
def test_completion_sample_over_http_with_call(name: str, router: OpenRouterDouble, connect: dict[str, str]) -> None:
    expected = RESPONSES[name]
    status = http_status(name)
    assert status == 200
    router.queue(Raw(served_body(name), status=status), Raw(served_body(name), status=status))
    ask = Call("some/model", **connect)

    check_content(ask("hi"), expected["content"])
    r = ask("hi", raw=True)
    assert isinstance(r, Response)
    assert r == loads(sample_bytes(name))
    assert r.id == expected["id"]
    assert r.model == expected["model"]
    assert r.provider == expected["provider"]
    assert r.choices[0].finish_reason == expected["finish_reason"]
    assert r.choices[0].message.content == expected["content"]
    for path, value in expected["usage"].items():
        check_value(dig(r.usage, path), value, f"usage.{path}")
    for path, value in expected.get("message", {}).items():
        check_value(dig(r.choices[0].message, path), value, f"message.{path}")
    assert json.loads(json.dumps(r)) == r  # a plain dict underneath


@pytest.mark.parametrize("name", [n for n in HTTP_COMPLETIONS if "tool" in n])
def test_tool_call_sample_over_http_with_chat(name: str, router: OpenRouterDouble, connect: dict[str, str]) -> None:
    expected = RESPONSES[name]
    router.queue(Raw(served_body(name)))
    chat = Chat(expected["model"], **connect)
    assert chat("Do the thing") == expected["content"]
    assert chat.history == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Do the thing"},
        {"role": "assistant", "content": expected["content"], "tool_calls": expected["tool_calls"]},
    ]
    assert chat.usage == {k: expected["usage"][k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    json.dumps(chat.history)


def test_raw_tool_call_without_arguments_is_left_as_sent(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """``raw=True`` hands out the body as OpenRouter sent it: no ``arguments`` key, so attribute access gives None."""
    router.queue(Raw(served_body("chat-nonstream-tool-call-without-arguments.response.json")))
    r = Call("anthropic/claude-sonnet-4.5", **connect)("hi", raw=True)
    call = r.choices[0].message.tool_calls[0]
    assert call.id == "toolu_vrtx_015QAXScZzRDPttiPoc34AdD"
    assert call.function.name == "find_education_content"
    assert call.function.arguments is None


def test_cache_conversation_replayed_through_chat(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Turn 1 of the prompt-caching capture, replayed with Chat: same request body, same history, same usage."""
    turn1 = sample_json("chat-nonstream-cache-write-then-read.turn1.request.json")
    turn2 = sample_json("chat-nonstream-cache-write-then-read.turn2.request.json")
    router.queue(
        Raw(served_body("chat-nonstream-cache-write-then-read.turn1.response.json")),
        Raw(served_body("chat-nonstream-cache-write-then-read.turn2.response.json")),
    )
    chat = Chat(turn1["model"], **connect, max_completion_tokens=100, provider=turn1["provider"])

    first = chat(turn1["messages"][1]["content"])
    check_content(first, RESPONSES["chat-nonstream-cache-write-then-read.turn1.response.json"]["content"])
    assert router.chat_requests[-1] == {k: v for k, v in turn1.items() if k != "stream"}
    assert chat.history[:2] == turn1["messages"]
    assert chat.history[2] == turn2["messages"][2]

    second = chat(turn2["messages"][3]["content"])
    check_content(second, RESPONSES["chat-nonstream-cache-write-then-read.turn2.response.json"]["content"])
    sent = router.chat_requests[-1]
    assert sent["messages"][2:] == turn2["messages"][2:]
    assert chat.usage == {"prompt_tokens": 3214 + 3329, "completion_tokens": 153, "total_tokens": 3314 + 3382}
    assert chat.turns == 2


# --------------------------------------------------------------------------------------------- errors

ERRORS: dict[str, dict[str, Any]] = {
    # status: from the *-meta.json beside it, or (429) from the README's note on the cassette
    "error-400-anthropic-empty-content-stream-request.response.json": {
        "status": 400,
        "cls": BadRequestError,
        "message": "Provider returned error",
        "provider_name": "Anthropic",
        "raw_error": "messages.0: all messages must have non-empty content except for the optional final "
        "assistant message",
        "user_id": "org_2uMVNwONqhSdZXQy1QtyWuCjTxZ",
    },
    "error-400-context-length-exceeded.response.json": {
        "status": 400,
        "cls": ContextWindowError,
        "message": "This endpoint's maximum context length is 1048576 tokens. However, you requested about 1048902 "
        "tokens (104161 of text input, 1023 of tool input, 943718 in the output). Please reduce the length of either "
        "one, or use the context-compression plugin to compress your prompt automatically.",
        "provider_name": None,
        "raw_error": None,
        "user_id": None,
    },
    "error-400-context-length-exceeded-previous-errors.response.json": {
        "status": 400,
        "cls": ContextWindowError,
        "message": "This endpoint's maximum context length is 1048576 tokens. However, you requested about 1780624 "
        "tokens (1780624 of text input). Please reduce the length of either one, or use the context-compression "
        "plugin to compress your prompt automatically.",
        "provider_name": None,
        "raw_error": None,
        "user_id": "user_REDACTED",
    },
    "error-400-image-url-fetch-failed.response.json": {
        "status": 400,
        "cls": BadRequestError,  # the message mentions a 429 from the image host; the status says 400
        "message": "Received 429 status code when fetching image from URL: https://upload.wikimedia.org/"
        "wikipedia/commons/thumb/4/47/PNG_transparency_demonstration_1.png/"
        "300px-PNG_transparency_demonstration_1.png",
        "provider_name": None,
        "raw_error": None,
        "user_id": None,
    },
    "error-400-input-must-have-1-token-stream-request.response.json": {
        "status": 400,
        "cls": BadRequestError,
        "message": "Input must have at least 1 token.",
        "provider_name": None,
        "raw_error": None,
        "user_id": None,
    },
    "error-400-provider-returned-error-anthropic.response.json": {
        "status": 400,
        "cls": BadRequestError,
        "message": "Provider returned error",
        "provider_name": "Anthropic",
        "raw_error": "messages.0.content.1.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'",
        "user_id": "org_2uMVNwONqhSdZXQy1QtyWuCjTxZ",
    },
    "error-429-upstream-rate-limited.response.json": {
        "status": 429,
        "cls": RateLimitError,
        "message": "Provider returned error",
        "provider_name": "Google",
        "raw_text": "google/gemini-2.0-flash-exp:free is temporarily rate-limited upstream. Please retry "
        "shortly, or add your own key to accumulate your rate limits: "
        "https://openrouter.ai/settings/integrations",
        "user_id": "user_2wT5ElBE4Es3R4QrNLpZiXICmQP",
    },
}


def error_status(name: str) -> int:
    meta = name.replace(".response.json", ".response-meta.json")
    if (SAMPLES / meta).exists():
        return meta_status(meta)
    return ERRORS[name]["status"]  # no meta captured: the README records "HTTP 429 Too Many Requests"


def error_model(name: str) -> str:
    request = name.replace(".response.json", ".request.json")
    if (SAMPLES / request).exists():
        return sample_json(request)["model"]
    return "google/gemini-2.0-flash-exp:free"  # named in the 429's metadata.raw


def check_error(exc: APIStatusError, name: str, *, status: int, model: str) -> None:
    expected = ERRORS[name]
    assert type(exc) is expected["cls"]
    assert exc.status == status
    assert exc.code == expected["status"]
    assert exc.message == expected["message"]
    assert exc.model == model
    assert exc.metadata["provider_name"] == expected["provider_name"]
    assert exc.body["error"]["message"] == expected["message"]
    assert exc.body.get("user_id") == expected["user_id"]
    if "raw_text" in expected:
        assert exc.metadata["raw"] == expected["raw_text"]
    elif expected["raw_error"] is not None:
        upstream = json.loads(exc.metadata["raw"])  # the provider's own body, passed on as a JSON string
        assert upstream["type"] == "error"
        assert upstream["error"]["type"] == "invalid_request_error"
        assert upstream["error"]["message"] == expected["raw_error"]
    else:
        assert "raw" not in exc.metadata
    assert expected["message"] in str(exc)
    if expected["provider_name"]:
        assert f"provider {expected['provider_name']}" in str(exc)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_sample_parses(name: str) -> None:
    status = error_status(name)
    assert status == ERRORS[name]["status"]
    body = loads(sample_bytes(name))
    exc = error_from_body(status, body, model="m/x")
    check_error(exc, name, status=status, model="m/x")
    # and the same envelope arriving in a 200 body is recognised by parse_completion
    with pytest.raises(ERRORS[name]["cls"]) as info:
        parse_completion(body, model="m/x")
    check_error(info.value, name, status=200, model="m/x")


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_sample_over_http(name: str, router: OpenRouterDouble, connect: dict[str, str]) -> None:
    status = error_status(name)
    model = error_model(name)
    router.queue(Raw(sample_bytes(name), status=status))
    chat = Chat(model, max_retries=0, **connect)
    with pytest.raises(ERRORS[name]["cls"]) as info:
        chat("hello")
    check_error(info.value, name, status=status, model=model)
    assert chat.history == [{"role": "system", "content": "You are a helpful assistant."}]
    assert chat.usage == zero_usage()


@pytest.mark.parametrize(
    "name",
    ["error-429-upstream-rate-limited.response.json", "error-400-provider-returned-error-anthropic.response.json"],
)
def test_error_envelope_in_http_200_body(name: str, router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """OpenRouter's late failures: keep-alive whitespace, then an error envelope, all under HTTP 200."""
    router.queue(Raw(KEEPALIVE * 3 + sample_bytes(name), status=200))
    with pytest.raises(ERRORS[name]["cls"]) as info:
        Call("some/model", max_retries=0, **connect)("hello", raw=True)
    check_error(info.value, name, status=200, model="some/model")


# --------------------------------------------------------------------------------------------- streams

STREAMS: dict[str, dict[str, Any]] = {
    "chat-stream-basic-text-2025-08.response.sse": {
        "text": "Pebbles and Skipper.",
        "finish_reason": "stop",
        "id": "gen-1754441342-hIkMo7SMi0ZecQw3oR4d",
        "model": "openai/gpt-4o",
        "provider": "OpenAI",
        "usage_variant": "null-finish",
        "usage": {"prompt_tokens": 17, "completion_tokens": 6, "total_tokens": 23, "cost": 0.0001025},
    },
    "chat-stream-final-usage-empty-choices-2026-03.response.sse": {
        "text": "Hello!",
        "finish_reason": "stop",
        "id": "gen-1773012759-4u9w7As08eMtL75bWtu8",
        "model": "anthropic/claude-4.6-sonnet-20260217",
        "provider": "Amazon Bedrock",
        "usage_variant": "empty-choices",
        "usage": {
            "prompt_tokens": 254,
            "completion_tokens": 5,
            "total_tokens": 259,
            "cost": 0.000837,
            "cost_details.upstream_inference_prompt_cost": 0.000762,
        },
    },
    "chat-stream-final-usage-repeats-finish-2026-08.response.sse": {
        "text": "https://github.com/pydantic/pydantic-ai ",
        "finish_reason": "stop",
        "id": "gen-1786465029-CAkqUciXgQW34RmFaTck",
        "model": "openai/gpt-4.1-mini",
        "provider": "OpenAI",
        "usage_variant": "repeat-finish",
        "usage": {
            "prompt_tokens": 8174,
            "completion_tokens": 30,
            "total_tokens": 8204,
            "cost": 0.0133176,
            "server_tool_use_details.web_search_requests": 1,
        },
    },
    "chat-stream-image-generation.response.truncated.sse": {
        "text": "",
        "finish_reason": "stop",
        "id": "gen-1764490369-EqMPlpIi5WZesJ0fT3VN",
        "model": "google/gemini-2.5-flash-image-preview",
        "provider": "Google",
        "usage_variant": "null-finish",
        "usage": {
            "prompt_tokens": 2,
            "completion_tokens": 1290,
            "total_tokens": 1292,
            "cost": 0.0387006,
            "completion_tokens_details.image_tokens": 1290,
        },
    },
    "chat-stream-image-input-2025-08.response.sse": {
        "text": "Red green geometric shapes",
        "finish_reason": "stop",
        "id": "gen-1754441344-pyQnLz9c6qI7tV48Fjp4",
        "model": "anthropic/claude-3.5-sonnet",
        "provider": "Amazon Bedrock",
        "usage_variant": "null-finish",
        "usage": {"prompt_tokens": 82, "completion_tokens": 7, "total_tokens": 89, "cost": 0.000351},
    },
    "chat-stream-model-fallback-provider-only-2025-11.response.sse": {
        "text": "I'm Grok, an AI built by xAI. I'm designed to be helpful, maximally truthful, and a bit "
        "witty\u2014think a mix of the Hitchhiker's Guide to the Galaxy and JARVIS from Iron Man. My goal is "
        "to help you understand the universe (and maybe crack a few jokes along the way). What's on your "
        "mind?",
        "finish_reason": "stop",
        "id": "gen-1762064096-m5VxL2xrxOREwashCey6",
        "model": "x-ai/grok-4",
        "provider": "xAI",
        "usage_variant": "null-finish",
        "usage": {
            "prompt_tokens": 687,
            "completion_tokens": 187,
            "total_tokens": 874,
            "cost": 0.00333825,
            "prompt_tokens_details.cached_tokens": 679,
            "completion_tokens_details.reasoning_tokens": 118,
        },
    },
    "chat-stream-reasoning-anthropic-2025-12.response.sse": {
        "text": "2 + 2 = 4",
        "finish_reason": "stop",
        "id": "gen-1765226419-AGrwjunAftQIAgweibL8",
        "model": "anthropic/claude-sonnet-4.5",
        "provider": "Google",
        "usage_variant": "null-finish",
        "usage": {
            "prompt_tokens": 43,
            "completion_tokens": 36,
            "total_tokens": 79,
            "cost": 0.000669,
            "completion_tokens_details.reasoning_tokens": 13,
        },
    },
    "chat-stream-thinking-variant-2026-01.response.reconstructed.sse": {
        "text": "The capital of France is Paris. Paris is located in the north-central part of the country on "
        "the Seine River and is one of the world's major cultural, financial, and political centers.",
        "finish_reason": "stop",
        "id": "gen-1767761748-03bXWfD95XJbsdMF29y7",
        "model": "anthropic/claude-3.7-sonnet:thinking",
        "provider": "Google",
        "usage_variant": "null-finish",
        "usage": {
            "prompt_tokens": 43,
            "completion_tokens": 134,
            "total_tokens": 177,
            "cost": 0.002139,
            "completion_tokens_details.reasoning_tokens": 90,
        },
    },
    "chat-stream-tool-call-2025-08.turn1.response.sse": {
        "text": "",
        "finish_reason": "tool_calls",
        "id": "gen-1754441566-QNLn11ywo16tGzus0Wix",
        "model": "openai/gpt-4.1-mini",
        "provider": "OpenAI",
        "usage_variant": "null-finish",
        "usage": {"prompt_tokens": 48, "completion_tokens": 11, "total_tokens": 59, "cost": 3.68e-05},
        "tool_calls": [tool_call("call_o4OCgtJrNoZTmoCRvmlfoHfj", "llm_version", "{}")],
    },
    "chat-stream-tool-call-2025-08.turn2.response.sse": {
        "text": "The current LLM version is 0.0+test.",
        "finish_reason": "stop",
        "id": "gen-1754441567-0DYjQqpItP2qbbL9HlFt",
        "model": "openai/gpt-4.1-mini",
        "provider": "OpenAI",
        "usage_variant": "null-finish",
        "usage": {"prompt_tokens": 73, "completion_tokens": 14, "total_tokens": 87, "cost": 5.16e-05},
    },
    "chat-stream-tool-call-gpt5-parameterless-2025-10.response.sse": {
        "text": "",
        "finish_reason": "tool_calls",
        "id": "gen-1760518100-Kp3RtWnYxQBA2SAbiPRM",
        "model": "openai/gpt-5",
        "provider": "OpenAI",
        "usage_variant": "null-finish",
        "usage": {"prompt_tokens": 58, "completion_tokens": 21, "total_tokens": 79, "cost": 0.0003825},
        "tool_calls": [tool_call("call_ZQpWJRxU5EIprhJ4cpxTMkNr", "time", "{}")],
    },
    "chat-stream-tool-call-gpt5-with-encrypted-reasoning-2025-10.response.sse": {
        "text": "",
        "finish_reason": "tool_calls",
        "id": "gen-1760518020-VQtQUVxVwoBA2SAbiKVT",
        "model": "openai/gpt-5",
        "provider": "OpenAI",
        "usage_variant": "null-finish",
        "usage": {
            "prompt_tokens": 50,
            "completion_tokens": 143,
            "total_tokens": 193,
            "cost": 0.0014925,
            "completion_tokens_details.reasoning_tokens": 128,
        },
        "tool_calls": [tool_call("call_KDpVIRBU5EIprhJ4cpxDEfPr", "time", "{}")],
    },
    "chat-stream-web-search-annotations-2026-08.response.sse": {
        "text": "The URL for Pydantic AI's GitHub repository is:  \n\nhttps://github.com/pydantic/pydantic-ai",
        "finish_reason": "stop",
        "id": "gen-1786680764-gY2YTdjLLLQA6Cd1Wa6J",
        "model": "deepseek/deepseek-chat",
        "provider": "OpenAI",
        "usage_variant": "repeat-finish",
        "usage": {
            "prompt_tokens": 2317,
            "completion_tokens": 53,
            "total_tokens": 2370,
            "cost": 0.0076509169000000005,
            "server_tool_use_details.tool_calls_requested": 1,
        },
    },
}

STREAM_ERRORS: dict[str, dict[str, Any]] = {
    "chat-stream-midstream-error-2025-11.response.sse": {
        "cls": BadRequestError,
        "code": 400,
        "message": "Token limit reached",
        "id": "gen-1762179802-UN8pkJI4AGZvryk0kFnb",
        "partial_text": "",  # the model only produced reasoning before hitting max_completion_tokens
        "finish_reason": "length",
        "chunks_before_error": 3,
        "usage": {"prompt_tokens": 43, "completion_tokens": 10, "total_tokens": 53, "cost": 0},
    },
}

LINE_STYLES = {
    "keepends": lambda text: text.splitlines(keepends=True),
    "stripped": lambda text: text.splitlines(),
    "crlf": lambda text: [line.rstrip("\n") + "\r\n" for line in text.splitlines(keepends=True)],
}


def usage_variant(chunks: list[dict[str, Any]]) -> str:
    """Which of the three final-usage forms a capture uses, decided here from the raw chunks."""
    (last,) = [c for c in chunks if "usage" in c]
    assert last is chunks[-1]
    if last["choices"] == []:
        return "empty-choices"
    return "null-finish" if last["choices"][0]["finish_reason"] is None else "repeat-finish"


def feed(name: str, style: str = "keepends") -> tuple[StreamAccumulator, list[dict[str, Any]], list[str]]:
    text = sample_bytes(name).decode("utf-8")
    payloads = list(sse_data(LINE_STYLES[style](text)))
    assert payloads == data_lines(text)
    return StreamAccumulator(model="asked/model"), [json.loads(p) for p in payloads], payloads


@pytest.mark.parametrize("style", sorted(LINE_STYLES))
@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_sample_accumulates(name: str, style: str) -> None:
    expected = STREAMS[name]
    acc, chunks, _ = feed(name, style)
    added = [acc.add(chunk) for chunk in chunks]
    reply = acc.reply()

    assert reply.content == expected["text"]
    assert reply.content == content_deltas(chunks)  # independently, straight from the chunks
    assert "".join(added) == expected["text"]
    assert reply.finish_reason == expected["finish_reason"]
    assert reply.id == expected["id"]
    assert reply.model == expected["model"]
    assert reply.provider == expected["provider"]

    assert usage_variant(chunks) == expected["usage_variant"]
    assert reply.usage == chunks[-1]["usage"]
    for path, value in expected["usage"].items():
        check_value(dig(reply.usage, path), value, f"usage.{path}")

    calls = expected.get("tool_calls", [])
    assert reply.tool_calls == calls
    deltas = [c["delta"] for chunk in chunks for c in chunk.get("choices") or []]
    streamed = {
        "images": [i for d in deltas for i in d.get("images") or []],
        "annotations": [a for d in deltas for a in d.get("annotations") or []],
        "reasoning": "".join(d["reasoning"] for d in deltas if isinstance(d.get("reasoning"), str)),
    }
    kept = {k: v for k, v in streamed.items() if v}
    details = reply.message.pop("reasoning_details", [])
    assert reply.message == {
        "role": "assistant",
        "content": expected["text"],
        **({"tool_calls": calls} if calls else {}),
        **kept,  # images, annotations and reasoning of the deltas stay on the message
    }
    # reasoning_details blocks: the pieces of each block joined, in order
    pieces = [b for d in deltas for b in d.get("reasoning_details") or []]
    assert "".join(b.get("text", "") for b in details) == "".join(b.get("text", "") for b in pieces)
    assert "".join(b.get("data", "") for b in details) == "".join(b.get("data", "") for b in pieces)
    assert {b["signature"] for b in details if b.get("signature")} == {
        b["signature"] for b in pieces if b.get("signature")
    }
    assert json.loads(json.dumps(reply.message)) == reply.message

    r = Response(reply.raw)
    assert r.choices[0].message.content == expected["text"]
    assert r.choices[0].finish_reason == expected["finish_reason"]
    assert r.usage.total_tokens == expected["usage"]["total_tokens"]


def test_all_three_final_usage_variants_are_covered() -> None:
    assert {s["usage_variant"] for s in STREAMS.values()} == {"null-finish", "empty-choices", "repeat-finish"}


def test_truncated_image_stream_still_parses() -> None:
    name = "chat-stream-image-generation.response.truncated.sse"
    _, chunks, payloads = feed(name)
    (image_chunk,) = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("images")]
    url = image_chunk["choices"][0]["delta"]["images"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAABOAAAANACAIAAAANYoVHAAAAiXpUWHRSYXcgcHJv")
    assert "<TRUNCATED: 1911452 base64 chars removed>" in url
    assert len(payloads) == 2


def test_stream_tool_call_turn_matches_what_turn_two_sent_back() -> None:
    acc, chunks, _ = feed("chat-stream-tool-call-2025-08.turn1.response.sse")
    for chunk in chunks:
        acc.add(chunk)
    sent = sample_json("chat-stream-tool-call-2025-08.turn2.request.json")["messages"]
    assert sent[1]["role"] == "assistant"
    assert acc.reply().tool_calls == sent[1]["tool_calls"]
    assert sent[2] == {"role": "tool", "tool_call_id": "call_o4OCgtJrNoZTmoCRvmlfoHfj", "content": "0.0+test"}


@pytest.mark.parametrize("style", sorted(LINE_STYLES))
@pytest.mark.parametrize("name", sorted(STREAM_ERRORS))
def test_midstream_error_sample_raises(name: str, style: str) -> None:
    expected = STREAM_ERRORS[name]
    acc, chunks, _ = feed(name, style)
    before = expected["chunks_before_error"]
    assert len(chunks) == before + 1
    assert "error" in chunks[before]
    for chunk in chunks[:before]:
        acc.add(chunk)
    assert acc.finish_reason == expected["finish_reason"]
    with pytest.raises(APIStatusError) as info:
        acc.add(chunks[before])
    exc = info.value
    assert type(exc) is expected["cls"]
    assert exc.status == 200  # the stream had long started with HTTP 200
    assert exc.code == expected["code"]
    assert exc.message == expected["message"]
    assert exc.generation_id == expected["id"]
    assert exc.model == "asked/model"
    assert exc.metadata == {}
    assert exc.partial_text == expected["partial_text"]  # type: ignore[attr-defined]
    assert exc.partial_text == content_deltas(chunks)  # type: ignore[attr-defined]
    for path, value in expected["usage"].items():
        check_value(dig(exc.usage, path), value, f"usage.{path}")  # type: ignore[attr-defined]
    assert "Token limit reached" in str(exc)


# --------------------------------------------------------------------------------------------- models lists

MODELS: dict[str, list[tuple[str, str]]] = {
    "models-list-2025-09.response.json": [
        ("anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4"),
        ("openai/gpt-4.1-mini", "OpenAI: GPT-4.1 Mini"),
        ("anthropic/claude-3.5-sonnet", "Anthropic: Claude 3.5 Sonnet"),
        ("openai/gpt-4o", "OpenAI: GPT-4o"),
        ("openai/gpt-3.5-turbo", "OpenAI: GPT-3.5 Turbo"),
    ],
    "models-list-2026-08.response.json": [
        ("anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4"),
        ("openai/gpt-4.1-mini", "OpenAI: GPT-4.1 Mini"),
        ("openai/gpt-4o", "OpenAI: GPT-4o"),
        ("openai/gpt-3.5-turbo", "OpenAI: GPT-3.5 Turbo"),
    ],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_list_sample_over_http(name: str) -> None:
    data = sample_json(name)["data"]
    with OpenRouterDouble(models=data) as double:
        assert get_all_models(base_url=double.base_url) == [mid for mid, _ in MODELS[name]]
        assert get_all_models(slug=False, base_url=double.base_url) == [title for _, title in MODELS[name]]
        assert list_models(base_url=double.base_url) == data
        assert double.requests[-1].path == "/api/v1/models"
        assert "authorization" not in double.requests[-1].headers


# --------------------------------------------------------------------------------------------- headers / meta

META: dict[str, dict[str, Any]] = {
    # file -> (status, content-type, the body file it describes)
    "chat-nonstream-image-url-2026-01.response-meta.json": {
        "status": 200,
        "content_type": "application/json",
        "body": "chat-nonstream-image-url-2026-01.response.raw",
    },
    "chat-nonstream-pdf-sent-as-image_url-2026-01.response-meta.json": {
        "status": 200,
        "content_type": "application/json",
        "body": "chat-nonstream-pdf-sent-as-image_url-2026-01.response.raw",
    },
    "chat-stream-thinking-variant-2026-01.response-meta.json": {
        "status": 200,
        "content_type": "text/event-stream",
        "body": "chat-stream-thinking-variant-2026-01.response.reconstructed.sse",
    },
    "error-400-anthropic-empty-content-stream-request.response-meta.json": {
        "status": 400,
        "content_type": "application/json",
        "body": "error-400-anthropic-empty-content-stream-request.response.json",
    },
    "error-400-image-url-fetch-failed.response-meta.json": {
        "status": 400,
        "content_type": "application/json",
        "body": "error-400-image-url-fetch-failed.response.json",
    },
    "error-400-input-must-have-1-token-stream-request.response-meta.json": {
        "status": 400,
        "content_type": "application/json",
        "body": "error-400-input-must-have-1-token-stream-request.response.json",
    },
    "error-400-provider-returned-error-anthropic.response-meta.json": {
        "status": 400,
        "content_type": "application/json",
        "body": "error-400-provider-returned-error-anthropic.response.json",
    },
    "models-list-2026-08.response-headers.json": {
        "status": None,
        "content_type": "application/json",
        "body": "models-list-2026-08.response.json",
    },
    "responses-api-stream.response-headers.json": {
        "status": None,
        "content_type": "text/event-stream",
        "body": None,  # the Responses API body was not kept; only its headers
    },
}

GENERATION_ID = re.compile(r"gen-\d{10}-[A-Za-z0-9]{20}")


def headers_of(name: str) -> dict[str, str]:
    """Lower-cased header names -> value, from either meta layout (``{"headers": {..}}`` or ``{Name: [..]}``)."""
    data = sample_json(name)
    headers = data.get("headers", data)
    return {k.lower(): v[0] if isinstance(v, list) else v for k, v in headers.items()}


@pytest.mark.parametrize("name", sorted(META))
def test_meta_sample_matches_its_body(name: str) -> None:
    expected = META[name]
    headers = headers_of(name)
    assert headers["content-type"] == expected["content_type"]
    if expected["status"] is not None:
        assert meta_status(name) == expected["status"]
    body = expected["body"]
    if body is None:
        return
    if expected["content_type"] == "text/event-stream":
        assert body in STREAMS
    elif expected["status"] == 200:
        assert body in RESPONSES
        assert body in HTTP_COMPLETIONS
        assert http_status(body) == 200
    elif expected["status"] is not None:
        assert body in ERRORS
        assert error_status(body) == expected["status"]
    else:
        assert body in MODELS


def test_captured_header_details() -> None:
    models = headers_of("models-list-2026-08.response-headers.json")
    assert models["cache-control"].startswith("public, max-age=300")
    assert models["access-control-expose-headers"] == "X-Generation-Id,X-Provider-Name,cf-ray"

    stream = headers_of("responses-api-stream.response-headers.json")
    assert stream["cache-control"] == "no-cache"
    assert stream["x-generation-id"] == "gen-1785882271-2B3yJ6vpOkI3nf9dZb6k"
    assert GENERATION_ID.fullmatch(stream["x-generation-id"])
    assert GENERATION_ID.fullmatch(generation_id())  # the double's ids look like the real ones


# --------------------------------------------------------------------------------------------- endpoints lists

ENDPOINTS: dict[str, tuple[str, list[tuple[str, str, float, float]]]] = {
    # model id, then per endpoint: tag, provider name, prompt $/M, time to first token p50 (ms)
    "model-endpoints-kimi-k3-2026-08.response.json": (
        "moonshotai/kimi-k3",
        [
            ("fireworks", "Fireworks", 3.0, 2687.0),
            ("alibaba", "Alibaba", 3.45, 9250.0),
            ("fireworks/fast", "Fireworks", 4.5, 814.5),
            ("morph/fast", "Morph", 6.0, 9612.0),
        ],
    ),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_endpoints_list_sample_over_http(name: str) -> None:
    from irouter import providers

    model, expected = ENDPOINTS[name]
    with OpenRouterDouble(endpoints={model: sample_json(name)}) as double:
        found = providers(model, base_url=double.base_url)
    assert [(p.tag, p.provider, p.prompt_price_per_million, p.latency and p.latency.p50) for p in found] == expected


# --------------------------------------------------------------------------------------------- coverage

EMBEDDINGS = {
    # read by tests/test_embeddings.py (the exchanges replayed through irouter.embed, the double's headers and key
    # order, the error envelope under HTTP 200)
    "embeddings-multi-input-2026-01.request.json",
    "embeddings-multi-input-2026-01.response.truncated.json",
    "embeddings-provider-order-user-2026-01.request.json",
    "embeddings-provider-order-user-2026-01.response.truncated.json",
    "embeddings-single-2026-01.request.json",
    "embeddings-single-2026-01.response-meta.json",
    "embeddings-single-2026-01.response.truncated.json",
    "error-in-200-embeddings-no-successful-provider-responses.response.json",
}

BATCHES: dict[str, str] = {
    # the Batch API's documented examples (no captured traffic exists), read by tests/test_batches.py
    "batch-chat-completions-doc-example.poll-completed.response.json": "a completed batch read by irouter",
    "batch-chat-completions-doc-example.submit.request.json": "irouter's submission, byte for byte",
    "batch-chat-completions-doc-example.submit.response.json": "the double's 202 answer has its keys",
    "batch-embeddings-doc-example.poll-completed.results-fragment.json": "results read by irouter",
    "batch-embeddings-doc-example.submit.request.json": "irouter's submission, byte for byte",
    "batch-messages-doc-example.submit.request.json": "irouter's submission, byte for byte",
}

TABLES: dict[str, Any] = {
    "batches": BATCHES,
    "embeddings": EMBEDDINGS,
    "requests": REQUESTS,
    "responses": RESPONSES,
    "errors": ERRORS,
    "streams": STREAMS,
    "stream errors": STREAM_ERRORS,
    "models": MODELS,
    "meta": META,
    "endpoints": ENDPOINTS,
}


def kind_of(name: str) -> str:
    """Which table a sample file belongs in, from its name alone."""
    if name.startswith(("embeddings-", "error-in-200-embeddings-")):
        return "embeddings"
    if name.startswith("batch-"):
        return "batches"
    if name.endswith(".request.json"):
        return "requests"
    if name.endswith(("-meta.json", "-headers.json")):
        return "meta"
    if name.endswith(".sse"):
        return "stream errors" if "error" in name else "streams"
    if name.startswith("models-list-"):
        return "models"
    if name.startswith("model-endpoints-"):
        return "endpoints"
    if name.startswith("error-"):
        return "errors"
    assert name.startswith("chat-nonstream-"), name
    return "responses"


LATER = {
    # kept for features irouter does not have yet; a test that covers one moves it into a table above
    "error-402-in-flight-budget-exhausted-previous-errors.response.json",
    "error-402-in-flight-budget-exhausted.response.json",
    "generation-stats-doc-example.response.json",
    "generation-stats-provider-fallback-2026-02.response.truncated.json",
    "responses-nonstream-prompt-cache-explicit-2026-07.turn1.request.json",
    "responses-nonstream-prompt-cache-explicit-2026-07.turn1.response.json",
    "responses-nonstream-prompt-cache-explicit-2026-07.turn2.request.json",
    "responses-nonstream-prompt-cache-explicit-2026-07.turn2.response.json",
}
"""Sample files no test reads yet (generation stats, the Responses API's prompt caching, in-flight budget errors):
in the repository so the issues that need them find them."""


def test_every_sample_file_is_covered() -> None:
    files = {p.name for p in SAMPLES.iterdir() if p.is_file() and p.name != "README.md"}
    assert sorted(LATER - files) == [], "LATER names files that do not exist"
    covered = {name for table in TABLES.values() for name in table}
    assert sorted(LATER & covered) == [], "these files are covered now: remove them from LATER"
    on_disk = sorted(files - LATER)
    assert len(on_disk) > 80
    missing = [name for name in on_disk if name not in TABLES[kind_of(name)]]
    assert missing == [], "sample files that no test covers (add them to the right table)"
    listed = [name for table in TABLES.values() for name in table]
    assert sorted(listed) == on_disk, "tables name files that do not exist, or a file twice"
    assert set(HTTP_COMPLETIONS) <= set(RESPONSES)
    assert any(n.endswith(".raw") for n in HTTP_COMPLETIONS)


def test_every_sample_file_is_described_in_the_readme() -> None:
    readme = sample_bytes("README.md").decode("utf-8")
    for path in SAMPLES.iterdir():
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
