"""Prompt caching (``cache=True``): breakpoints per model family in the bodies the double receives, history kept
clean, and the ledger's cache counters and savings from the captured caching conversations."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irouter import AsyncChat, Call, Chat
from irouter._caching import ANTHROPIC_LIMIT, CacheRule, count_breakpoints, place_breakpoints
from irouter.catalog import list_models
from irouter.testing import OpenRouterDouble, Raw, Text, model_record

from .conftest import SAMPLES

ANTHROPIC = "anthropic/claude-sonnet-4.6"
GEMINI = "google/gemini-2.5-flash"
PROMPT, READ, WRITE, WRITE_1H = 3e-6, 0.3e-6, 3.75e-6, 6e-6
"""Anthropic's Sonnet prices per token (protocol reference §14.4), as the catalog lists them."""
G_PROMPT, G_READ, G_WRITE = 0.3e-6, 0.03e-6, 0.3e-6 / 3.6


def record(slug: str, prompt: float, completion: float, **cache: float) -> dict[str, Any]:
    rec = model_record(slug, slug, 200_000, ["text"], f"{prompt:.10f}", f"{completion:.10f}", ["tools", "max_tokens"])
    rec["pricing"].update({k: repr(v) for k, v in cache.items()})
    return rec


def catalog() -> list[dict[str, Any]]:
    return [
        record(ANTHROPIC, PROMPT, 15e-6, input_cache_read=READ, input_cache_write=WRITE, input_cache_write_1h=WRITE_1H),
        record(GEMINI, G_PROMPT, 2.5e-6, input_cache_read=G_READ, input_cache_write=G_WRITE),
        record("openai/gpt-4o-mini", 0.15e-6, 0.6e-6, input_cache_read=0.075e-6),
        record("deepseek/deepseek-chat", 0.27e-6, 1.1e-6, input_cache_read=0.07e-6, input_cache_write=0.27e-6),
        record("x-ai/grok-4", 3e-6, 15e-6, input_cache_read=0.75e-6),
        record("qwen/qwen3-max", 1.2e-6, 6e-6, input_cache_read=0.24e-6, input_cache_write=1.5e-6),
        record("meta-llama/llama-3.3-70b-instruct", 0.13e-6, 0.4e-6),
    ]


@pytest.fixture
def cached_router() -> Any:
    with OpenRouterDouble(models=catalog()) as double:
        list_models(double.base_url)  # the catalog at hand, as after a capability check against OpenRouter
        yield double


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_bytes())


def raw(name: str) -> Raw:
    return Raw((SAMPLES / name).read_bytes())


def marks(body: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Where a body's breakpoints are: ``("tool", name, ttl)`` or ``(role, text, ttl)`` per marked part."""
    found = [("tool", t["function"]["name"], t["cache_control"].get("ttl", "")) for t in body.get("tools") or []]
    found = [f for f, t in zip(found, body.get("tools") or [], strict=True) if "cache_control" in t]
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if "cache_control" in part:
                    found.append((message["role"], part["text"], part["cache_control"].get("ttl", "")))
    return found


def no_breakpoints_in(history: Any) -> None:
    text = json.dumps(history)
    assert "cache_control" not in text, "history must keep plain messages"


def calculator(expression: str) -> str:
    """Evaluate a math expression."""
    left, op, right = expression.split()
    a, b = int(left), int(right)
    return str(a * b if op == "*" else a + b)


def prompt_savings(response: dict[str, Any]) -> float:
    """What caching saved on a captured response: its prompt at the plain prompt price, less what the provider
    charged for the prompt (``cost_details.upstream_inference_prompt_cost``)."""
    usage = response["usage"]
    price = PROMPT if response["model"].startswith("anthropic/") else G_PROMPT
    return float(usage["prompt_tokens"] * price - usage["cost_details"]["upstream_inference_prompt_cost"])


# --------------------------------------------------------------------------------------------- replayed conversations


def test_anthropic_tool_conversation_replayed(cached_router: OpenRouterDouble) -> None:
    """The captured Anthropic conversation (system prompt, a tool, a tool step, then a new question): irouter marks
    at least every place the capture marked, never more than four, and the ledger reads the cache counters."""
    stem = "chat-nonstream-cache-anthropic-tools-ttl-2026-03"
    requests = [sample(f"{stem}.turn{i}.request.json") for i in (1, 2, 3)]
    responses = [sample(f"{stem}.turn{i}.response.json") for i in (1, 2, 3)]
    system = requests[0]["messages"][0]["content"][0]["text"]
    router = cached_router
    router.queue(*(raw(f"{stem}.turn{i}.response.json") for i in (1, 2, 3)))
    chat = Chat(ANTHROPIC, system=system, cache=True, base_url=router.base_url, api_key=router.api_key)

    assert chat("What is 123 * 456?", tools=[calculator]).startswith("**Step-by-step breakdown:**")
    chat.reset_history()  # the capture's third request starts again from the system prompt
    assert chat("What is 789 + 321?", tools=[calculator]).startswith("I'll solve this step by step!")

    sent = router.chat_requests
    assert len(sent) == 3
    for body, captured in zip(sent, requests, strict=True):
        ours = {(kind, text) for kind, text, _ in marks(body)}
        theirs = {(kind, text) for kind, text, _ in marks(captured)}
        assert theirs <= ours, f"the capture marked {theirs - ours} too"
        assert count_breakpoints(body) <= ANTHROPIC_LIMIT
        assert all(ttl == "" for _, _, ttl in marks(body))  # the default 5 minutes: no ttl key
    assert marks(sent[1])[-1] == ("tool", "56088", "")  # the moving breakpoint: the newest tool result
    assert ("user", "What is 123 * 456?", "") in marks(sent[1])  # and the previous user message

    no_breakpoints_in(chat.history)
    assert chat.history[0] == {"role": "system", "content": system}
    ledger = chat.ledger
    assert [e.cached_tokens for e in ledger] == [
        r["usage"]["prompt_tokens_details"]["cached_tokens"] for r in responses
    ]
    assert [e.cache_write_tokens for e in ledger] == [
        r["usage"]["prompt_tokens_details"]["cache_write_tokens"] for r in responses
    ]
    for entry, response in zip(ledger, responses, strict=True):
        assert entry.cache_savings == pytest.approx(prompt_savings(response), abs=1e-12)
    assert ledger[0].cache_savings < 0 < ledger[1].cache_savings  # a write costs more; a read saves
    assert chat.cache_savings == pytest.approx(sum(prompt_savings(r) for r in responses), abs=1e-12)


def test_write_then_read_replayed(cached_router: OpenRouterDouble) -> None:
    """Two turns on one long user message: the second reads what the first wrote; savings match the bill."""
    stem = "chat-nonstream-cache-write-then-read"
    first = sample(f"{stem}.turn1.request.json")
    router = cached_router
    router.queue(raw(f"{stem}.turn1.response.json"), raw(f"{stem}.turn2.response.json"))
    chat = Chat(ANTHROPIC, system="You are a helpful assistant.", cache=True, **connect_to(router))
    chat(first["messages"][1]["content"][0]["text"])
    chat("Can you summarize that in one sentence?")
    second = router.chat_requests[1]
    assert marks(second) == [
        ("system", "You are a helpful assistant.", ""),
        ("user", first["messages"][1]["content"][0]["text"], ""),
        ("user", "Can you summarize that in one sentence?", ""),
    ]
    responses = [sample(f"{stem}.turn{i}.response.json") for i in (1, 2)]
    assert [e.cache_savings for e in chat.ledger] == pytest.approx([prompt_savings(r) for r in responses])
    assert chat.cache_savings == pytest.approx(sum(prompt_savings(r) for r in responses))
    no_breakpoints_in(chat.history)


def test_gemini_gets_one_breakpoint_on_the_newest_message(cached_router: OpenRouterDouble) -> None:
    """Gemini uses only the last breakpoint: one, on the newest user message (caching the whole prefix), no TTL
    (Gemini's is fixed) even when an hour is asked for. Its first reply reports the same tokens written and read."""
    stem = "chat-nonstream-cache-gemini-system-2026-03"
    requests = [sample(f"{stem}.turn{i}.request.json") for i in (1, 2)]
    responses = [sample(f"{stem}.turn{i}.response.json") for i in (1, 2)]
    router = cached_router
    router.queue(raw(f"{stem}.turn1.response.json"), raw(f"{stem}.turn2.response.json"))
    system = requests[0]["messages"][0]["content"][0]["text"]
    chat = Chat(GEMINI, system=system, cache=True, cache_ttl="1h", **connect_to(router))
    for request in requests:
        chat(request["messages"][1]["content"])
    for body, request in zip(router.chat_requests, requests, strict=True):
        assert marks(body) == [("user", request["messages"][1]["content"], "")]
        assert body["messages"][-1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert [e.cache_savings for e in chat.ledger] == pytest.approx([prompt_savings(r) for r in responses])
    assert [(e.cached_tokens, e.cache_write_tokens) for e in chat.ledger] == [(2161, 2161), (2161, 0)]
    no_breakpoints_in(chat.history)


def test_four_breakpoints_placed_by_the_caller_are_left_alone(cached_router: OpenRouterDouble) -> None:
    """The captured request already holds four breakpoints (system + three user parts): ``cache=True`` adds none
    (Anthropic refuses a fifth) and sends the messages as the caller made them."""
    name = "chat-nonstream-cache-four-breakpoints-2026-04"
    request = sample(f"{name}.request.json")
    cached_router.queue(raw(f"{name}.response.json"))
    answer = Call(ANTHROPIC, cache=True, **connect_to(cached_router))(request["messages"])
    assert answer == sample(f"{name}.response.json")["choices"][0]["message"]["content"]
    body = cached_router.chat_requests[-1]
    assert count_breakpoints(body) == 4
    assert body["messages"] == request["messages"]


# --------------------------------------------------------------------------------------------- the rule per family


def connect_to(router: OpenRouterDouble) -> dict[str, str]:
    return {"base_url": router.base_url, "api_key": router.api_key}


@pytest.mark.parametrize(
    "slug", ["openai/gpt-4o-mini", "deepseek/deepseek-chat", "x-ai/grok-4", "meta-llama/llama-3.3-70b-instruct"]
)
def test_automatic_and_uncached_families_get_nothing(cached_router: OpenRouterDouble, slug: str) -> None:
    """OpenAI, DeepSeek and Grok cache on their own; a model whose catalog lists no write price gets nothing."""
    cached_router.queue("a", "b")
    chat = Chat(slug, cache=True, cache_ttl="1h", **connect_to(cached_router))
    chat("Hello", tools=[calculator])
    chat("Again")
    for body in cached_router.chat_requests:
        assert "cache_control" not in json.dumps(body)


def test_other_models_with_a_write_price_get_the_top_level_marker(cached_router: OpenRouterDouble) -> None:
    chat = Chat("qwen/qwen3-max", cache=True, **connect_to(cached_router))
    chat("Hello")
    chat("Again", cache_ttl="1h")
    first, second = cached_router.chat_requests
    assert first["cache_control"] == {"type": "ephemeral"}
    assert second["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert count_breakpoints(first) == count_breakpoints(second) == 0


def test_cache_per_call_and_ttl(cached_router: OpenRouterDouble) -> None:
    """``cache=True`` for one call only; ``cache_ttl="1h"`` (alone it turns caching on) puts the hour on every
    breakpoint; ``cache=False`` turns off a chat's default."""
    cached_router.queue("a", "b", "c", "d", "e")  # plain answers (the default one would call the tool)
    chat = Chat(ANTHROPIC, system="Be brief.", **connect_to(cached_router))
    chat("one")
    chat("two", cache=True)
    chat("three", cache_ttl="1h", tools=[calculator])
    chat("four")
    plain, marked, hour, after = cached_router.chat_requests
    assert marks(plain) == marks(after) == []
    assert marks(marked) == [("system", "Be brief.", ""), ("user", "one", ""), ("user", "two", "")]
    assert marks(hour) == [
        ("tool", "calculator", "1h"),
        ("system", "Be brief.", "1h"),
        ("user", "two", "1h"),
        ("user", "three", "1h"),
    ]
    defaults = Chat(ANTHROPIC, cache=True, **connect_to(cached_router))
    defaults("five", cache=False)
    assert marks(cached_router.chat_requests[-1]) == []
    with pytest.raises(ValueError, match="cache_ttl must be '5m' or '1h'"):
        chat("six", cache=True, cache_ttl="2h")
    with pytest.raises(TypeError, match="cache must be True or False"):
        chat("six", cache="yes")
    assert len(cached_router.chat_requests) == 5


def test_streamed_and_async_turns_mark_and_count(cached_router: OpenRouterDouble) -> None:
    """The same breakpoints in a streamed turn and an async one; the streamed usage's cache counters reach the
    ledger."""
    usage = {
        "prompt_tokens": 3000,
        "completion_tokens": 10,
        "total_tokens": 3010,
        "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 900},
    }
    cached_router.queue(Text("streamed", usage=usage), Text("awaited", usage=usage))
    chat = Chat(ANTHROPIC, system="Be brief.", cache=True, **connect_to(cached_router))
    assert "".join(chat("one", stream=True)) == "streamed"

    async def main() -> str:
        achat = AsyncChat(ANTHROPIC, system="Be brief.", cache=True, **connect_to(cached_router))
        return await achat("two")

    assert asyncio.run(main()) == "awaited"
    for body, text in zip(cached_router.chat_requests, ["one", "two"], strict=True):
        assert marks(body) == [("system", "Be brief.", ""), ("user", text, "")]
    entry = chat.ledger[0]
    assert (entry.streamed, entry.cached_tokens, entry.cache_write_tokens) == (True, 2000, 900)
    expected = 2000 * (PROMPT - READ) - 900 * (WRITE - PROMPT)
    assert chat.cache_savings == pytest.approx(expected)
    no_breakpoints_in(chat.history)


def test_no_catalog_prices_no_savings(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Without the catalog's cache prices the counters are kept but no saving is claimed."""
    router.queue(
        Text("hi", usage={"prompt_tokens": 50, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 40}})
    )
    chat = Chat(ANTHROPIC, cache=True, **connect)
    chat("hello")
    assert chat.ledger[0].cached_tokens == 40
    assert chat.cache_savings is None


# --------------------------------------------------------------------------------------------- properties

TEXT = st.text(min_size=0, max_size=8)
PART = st.fixed_dictionaries(
    {"type": st.just("text"), "text": TEXT},
    optional={"cache_control": st.just({"type": "ephemeral"})},
)
CONTENT = st.one_of(TEXT, st.lists(PART, max_size=3))
MESSAGE = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["system", "user", "assistant", "tool"]),
    CONTENT,
)
TOOL = st.builds(
    lambda name, marked: {"type": "function", "function": {"name": name}, **({"cache_control": {}} if marked else {})},
    st.sampled_from(["a", "b"]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(MESSAGE, max_size=12),
    tools=st.lists(TOOL, max_size=3),
    limit=st.sampled_from([1, ANTHROPIC_LIMIT]),
    ttl=st.sampled_from([None, "1h"]),
)
def test_breakpoints_never_pass_the_limit_and_never_touch_history(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]], limit: int, ttl: str | None
) -> None:
    body = {"model": "m", "messages": messages, **({"tools": tools} if tools else {})}
    before = copy.deepcopy(body)
    marked = place_breakpoints(body, CacheRule(limit, ttl))
    assert body == before, "the caller's messages (history) are never changed"
    assert count_breakpoints(marked) <= max(limit, count_breakpoints(before))
    markable = [
        i
        for i, m in enumerate(messages)
        if m["role"] in ("user", "tool")
        and (m["content"] if isinstance(m["content"], str) else any(p["text"] for p in m["content"]))
    ]
    if count_breakpoints(before) < limit and markable:
        newest = marked["messages"][markable[-1]]["content"]
        assert any("cache_control" in p for p in newest), "room left: the newest user or tool message is marked"

    # the same text in the same order: only markers were added
    def texts(b: dict[str, Any]) -> list[str]:
        return [
            c if isinstance(c, str) else "".join(p["text"] for p in c) for c in (m["content"] for m in b["messages"])
        ]

    assert texts(marked) == texts(before)
    for message in marked["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if "cache_control" in part and part not in [
                    p for m in before["messages"] if isinstance(m["content"], list) for p in m["content"]
                ]:
                    assert part["text"], "never on an empty text"
                    assert part["cache_control"] == (
                        {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}
                    )
