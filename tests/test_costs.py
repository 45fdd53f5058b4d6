"""Cost, the ledger and budgets, over HTTP: single, multi-model, tool loops, streams, servers without cost."""

from __future__ import annotations

import json

import pytest

import irouter
from irouter import Chat, LedgerEntry
from irouter.catalog import list_models
from irouter.testing import Error, OpenRouterDouble, Raw, Text, ToolCall

from .conftest import SAMPLES

M = "openai/gpt-4o-mini"


def usage(prompt: int, completion: int, cost: float | None = None, **extra: object) -> dict:
    data: dict = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if cost is not None:
        data["cost"] = cost
    return {**data, **extra}


def get_weather(city: str) -> str:
    """Weather in a city."""
    return "sunny"


def test_cost_and_ledger_of_a_turn(router: OpenRouterDouble, connect: dict) -> None:
    detailed = usage(
        100,
        20,
        0.0012,
        prompt_tokens_details={"cached_tokens": 64},
        completion_tokens_details={"reasoning_tokens": 7},
        is_byok=False,
    )
    router.queue(Text("Hi", usage=detailed, model="openai/gpt-4o-mini-2024-07-18", provider="Azure"))
    chat = Chat(M, **connect)
    assert chat.cost == 0.0
    assert chat.ledger == []
    chat("hello")
    assert chat.cost == pytest.approx(0.0012)
    assert chat.usage == {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}  # still 3 keys
    [entry] = chat.ledger
    assert isinstance(entry, LedgerEntry)
    assert entry.model == M
    assert entry.served_model == "openai/gpt-4o-mini-2024-07-18"
    assert entry.provider == "Azure"
    assert entry.generation_id.startswith("gen-")
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cached_tokens, entry.reasoning_tokens) == (
        100,
        20,
        64,
        7,
    )
    assert entry.cost == pytest.approx(0.0012)
    assert entry.estimated_cost is None
    assert entry.finish_reason == "stop"
    assert entry.step == 1
    assert entry.streamed is False
    assert entry.ttft is None
    assert 0 <= entry.latency < 10
    assert entry.is_byok is False
    assert json.loads(json.dumps(entry.to_dict()))["model"] == M
    chat.reset_usage()
    assert (chat.cost, chat.ledger, chat.usage["total_tokens"]) == (0.0, [], 0)
    assert len(chat.history) == 3


def test_ledger_of_tool_loops_fan_out_and_streams(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(
        Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})], usage=usage(10, 5, 0.001)),
        Text("Sunny.", usage=usage(20, 3, 0.002)),
        model="a/a",
    )
    router.queue(Text("No tools.", usage=usage(8, 2, 0.0005)), model="b/b")
    chat = Chat(["a/a", "b/b"], **connect)
    chat("weather?", tools=[get_weather])
    assert chat.cost == {"a/a": pytest.approx(0.003), "b/b": pytest.approx(0.0005)}
    assert sorted((e.model, e.step) for e in chat.ledger) == [("a/a", 1), ("a/a", 2), ("b/b", 1)]
    router.queue(Text("streamed answer", usage=usage(5, 2, 0.0001), chunk_delay=0.01), model="b/b")
    router.queue("plain", model="a/a")
    list(chat("again", stream=True))
    streamed = [e for e in chat.ledger if e.streamed]
    assert {e.model for e in streamed} == {"a/a", "b/b"}
    assert all(e.ttft is not None and 0 <= e.ttft <= e.latency for e in streamed)
    assert chat.cost["b/b"] == pytest.approx(0.0006)


def test_servers_without_cost(connect: dict) -> None:
    """No cost reported: cost is unknown (None), not 0; an estimate comes from catalog prices when known."""
    with OpenRouterDouble() as local:
        local.queue(Text("a", usage=usage(1000, 500)), Text("b", usage=usage(1000, 500)))
        chat = Chat(M, base_url=local.base_url, api_key=local.api_key)
        chat("one")
        assert chat.cost is None
        assert chat.estimated_cost is None  # no catalog at hand: nothing to estimate from
        assert chat.ledger[0].cost is None
        list_models(local.base_url)  # the catalog arrives (gpt-4o-mini: $0.15 / $0.60 per million)
        chat("two")
        assert chat.ledger[1].estimated_cost == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)
        assert chat.cost is None
        assert chat.estimated_cost == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)


def test_captured_usage_shapes_cost(router: OpenRouterDouble, connect: dict) -> None:
    """2025 bodies without cost, BYOK bodies with cost 0 and an upstream cost, full 2026 bodies."""
    for name, cost in [
        ("chat-nonstream-usage-not-requested-2025-11.response.json", None),
        ("chat-nonstream-tool-required-byok.turn2.response.json", 0.0),
        ("chat-nonstream-web-search-annotations-2026-08.response.json", 0.007637029),
    ]:
        router.queue(Raw((SAMPLES / name).read_bytes()))
        chat = Chat("m/m", **connect)
        chat("x")
        assert chat.ledger[0].cost == (pytest.approx(cost) if cost is not None else None), name
        body = json.loads((SAMPLES / name).read_bytes())
        assert chat.ledger[0].served_model == body["model"]
        assert chat.ledger[0].provider == body["provider"]


def test_budget_stops_before_sending(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text("a", usage=usage(10, 10, 0.3)), Text("b", usage=usage(10, 10, 0.3)))
    chat = Chat(M, max_cost=0.5, **connect)
    chat("one")
    chat("two")  # 0.3 spent < 0.5: sent, and now 0.6 is spent
    sent = len(router.chat_requests)
    with pytest.raises(irouter.BudgetExceeded, match=r"spent \$0\.600000 of max_cost=\$0\.5") as info:
        chat("three")
    assert len(router.chat_requests) == sent  # nothing was sent
    assert (info.value.kind, info.value.limit, info.value.model) == ("cost", 0.5, M)
    assert info.value.spent == pytest.approx(0.6)
    assert "chat.max_cost" in str(info.value)
    assert len(chat.history) == 5
    chat.max_cost = 1.0
    assert chat("three") == "You said: three"


def test_budget_stops_a_tool_loop_with_what_it_has(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Text(tool_calls=[ToolCall("get_weather", {"city": "Oslo"})], usage=usage(10, 5, 0.02)))
    chat = Chat(M, max_cost=0.01, **connect)
    with pytest.raises(irouter.BudgetExceeded) as info:
        chat("weather?", tools=[get_weather])
    assert len(router.chat_requests) == 1  # the second step was never sent
    assert [m["role"] for m in info.value.messages] == ["user", "assistant", "tool"]
    assert info.value.messages[-1]["content"] == "sunny"
    assert len(chat.history) == 1  # nothing half-done in history
    assert chat.cost == pytest.approx(0.02)  # but the money spent is on the books


def test_token_budget_and_fan_out(router: OpenRouterDouble, connect: dict) -> None:
    # a/a and b/b are not in the catalog: max_tokens bounds each request's worst case (about 24 tokens here)
    chat = Chat(["a/a", "b/b"], max_total_tokens=60, max_tokens=5, **connect)
    router.queue(Text("x", usage=usage(10, 10)), model="a/a")
    router.queue(Text("y", usage=usage(10, 10)), model="b/b")
    chat("one")  # 40 tokens now
    with pytest.raises(irouter.MultiModelError) as info:
        chat("two")
    assert all(isinstance(e, irouter.BudgetExceeded) for e in info.value.errors.values())
    assert info.value.errors["a/a"].kind == "tokens"
    with pytest.raises(ValueError, match="max_cost"):
        Chat(M, max_cost=-1, **connect)
    with pytest.raises(ValueError, match="max_total_tokens"):
        chat.max_total_tokens = "lots"  # type: ignore[assignment]


def test_streamed_failure_records_billed_usage(router: OpenRouterDouble, connect: dict) -> None:
    sample = (SAMPLES / "chat-stream-midstream-error-2025-11.response.sse").read_bytes()
    router.queue(Raw(sample, content_type="text/event-stream"))
    chat = Chat("minimax/minimax-m2:free", **connect)
    with pytest.raises(irouter.BadRequestError):
        list(chat("hi", stream=True))
    [entry] = chat.ledger
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cost) == (43, 10, 0)
    assert entry.finish_reason == "error"


def test_failed_requests_without_usage_are_not_in_the_ledger(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(500, "boom"))
    chat = Chat(M, max_retries=0, **connect)
    with pytest.raises(irouter.ServerError):
        chat("hi")
    assert chat.ledger == []
    assert chat.cost == 0.0
