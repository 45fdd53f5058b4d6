"""Budgets are caps: each request's worst case is reserved before it is sent, shared by every request in flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncChat, Chat
from irouter._engine import FINAL_PROMPT
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall, model_record

PRICES = (0.000001, 0.000002)
"""Dollars per prompt and completion token, in the catalog and in what the double reports: the same."""
MODELS = [f"lab/model-{i}" for i in range(8)]
SYSTEM = "Be brief."


def catalog(max_completion: int = 1000) -> list[dict[str, Any]]:
    records = [
        model_record(m, m, 8000, ["text"], f"{PRICES[0]:.6f}", f"{PRICES[1]:.6f}", ["max_tokens", "tools"])
        for m in MODELS
    ]
    for record in records:
        record["top_provider"]["max_completion_tokens"] = max_completion
    unpriced = model_record("lab/unpriced", "Unpriced", 8000, ["text"], "", "", ["max_tokens"])
    unpriced["context_length"] = unpriced["top_provider"]["context_length"] = None
    unpriced["top_provider"]["max_completion_tokens"] = None
    return [*records, unpriced]


@pytest.fixture
def priced() -> Iterator[OpenRouterDouble]:
    """A double whose catalog lists eight priced models, answering slowly enough that a fan-out overlaps."""
    with OpenRouterDouble(models=catalog(), prices=PRICES, latency=0.2) as double:
        yield double


def one_answer(double: OpenRouterDouble, max_tokens: int) -> float:
    """The worst case of one "hi" request, read from what the budget itself reports needing."""
    probe = Chat(MODELS[0], SYSTEM, base_url=double.base_url, api_key=double.api_key, max_cost=1e-12)
    with pytest.raises(irouter.BudgetExceeded) as info:
        probe("hi", max_tokens=max_tokens)
    assert double.chat_requests == []
    return info.value.needed


def long_answer(max_tokens: int) -> Any:
    """A responder whose answers use every completion token allowed: each costs about its worst case."""
    usage = {"prompt_tokens": 5, "completion_tokens": max_tokens, "total_tokens": 5 + max_tokens}
    usage["cost"] = 5 * PRICES[0] + max_tokens * PRICES[1]
    return lambda request: Text("A long answer.", usage=usage)


def spent(chat: Any) -> float:
    return sum(e.cost for e in chat.ledger)


def errors_of(call: Any) -> dict[str, BaseException]:
    """The errors of a fan-out (none when every model answered)."""
    try:
        call()
    except irouter.MultiModelError as failed:
        return failed.errors
    return {}


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 8), fit=st.integers(0, 4), style=st.sampled_from(["call", "stream", "async"]))
def test_a_fan_out_never_spends_more_than_max_cost(priced: OpenRouterDouble, n: int, fit: int, style: str) -> None:
    """Regression: 8 models with a budget worth about one answer spent 4.7 times the cap."""
    priced.reset()
    priced.default = long_answer(50)
    worst = one_answer(priced, 50)
    cap = worst * (fit + 0.5)
    connect = {"base_url": priced.base_url, "api_key": priced.api_key, "max_cost": cap}
    chat: Any = Chat(MODELS[:n], SYSTEM, **connect)
    if style == "call":
        errors = errors_of(lambda: chat("hi", max_tokens=50))
    elif style == "stream":
        errors = errors_of(lambda: list(chat("hi", max_tokens=50, stream=True)))
    else:
        chat = AsyncChat(MODELS[:n], SYSTEM, **connect)
        errors = errors_of(lambda: asyncio.run(chat("hi", max_tokens=50)))
    assert spent(chat) <= cap
    assert len(priced.chat_requests) >= min(n, fit)  # what fits is sent (all at once: none finished yet)
    assert len(priced.chat_requests) + len(errors) == n
    for error in errors.values():
        assert isinstance(error, irouter.BudgetExceeded)
        assert error.needed == pytest.approx(worst)
        assert "was not sent" in str(error)
    assert sum(len(h) == 3 for h in chat.history.values()) == n - len(errors)
    assert len(priced.chat_requests) <= fit  # each answer cost nearly its worst case: no more could fit


def test_threads_share_one_budget(priced: OpenRouterDouble) -> None:
    priced.default = long_answer(20)
    worst = one_answer(priced, 20)
    chat = Chat(MODELS[:4], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_cost=worst * 3.5)
    outcomes: list[Any] = []

    def one() -> None:
        outcomes.append(errors_of(lambda: chat("hi", max_tokens=20)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert spent(chat) <= worst * 3.5
    refused = sum(len(errors) for errors in outcomes)
    assert 3 <= len(priced.chat_requests) == 16 - refused <= 4


def test_the_reported_cost_replaces_the_reservation(priced: OpenRouterDouble) -> None:
    worst = one_answer(priced, 40)
    chat = Chat(MODELS[0], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_cost=worst * 1.5)
    chat("hi", max_tokens=40)  # costs far less than its worst case ...
    chat("hi", max_tokens=40)  # ... so there is room for this one
    assert spent(chat) < worst
    with pytest.raises(irouter.BudgetExceeded) as info:
        chat("hi", max_tokens=400)  # a worst case that does not fit
    assert info.value.needed > worst
    assert len(priced.chat_requests) == 2
    assert len(chat.history) == 5


def test_failed_and_closed_requests_give_their_reservation_back(priced: OpenRouterDouble) -> None:
    worst = one_answer(priced, 30)
    chat = Chat(MODELS[0], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_cost=worst * 1.5)
    priced.queue(Error(500, "boom"), Error(500, "boom"), Error(500, "boom"))
    with pytest.raises(irouter.ServerError):
        chat("hi", max_tokens=30)
    priced.queue(Text("one two three four five six", chunk_delay=0.2))
    stream = chat("hi", stream=True, max_tokens=30)
    next(iter(stream))
    stream.close()
    assert chat("hi", max_tokens=30) == "You said: hi"


def test_budget_exceeded_holds_the_messages_of_the_summary_request(priced: OpenRouterDouble) -> None:
    """Regression: when the budget stopped the summary request after max_steps, .messages was empty."""

    def get_time() -> str:
        """The time."""
        return "noon"

    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 1.0}
    priced.queue(Text(tool_calls=[ToolCall("get_time", {})], usage=usage))
    chat = Chat(MODELS[0], base_url=priced.base_url, api_key=priced.api_key, max_cost=0.5)
    with pytest.raises(irouter.BudgetExceeded) as info:
        chat("What time is it?", tools=[get_time], max_steps=1)
    assert len(priced.chat_requests) == 1
    roles = [m["role"] for m in info.value.messages]
    assert roles == ["user", "assistant", "tool", "user"]
    assert info.value.messages[0]["content"] == "What time is it?"
    assert info.value.messages[2]["content"] == "noon"
    assert info.value.messages[3]["content"] == FINAL_PROMPT
    assert len(chat.history) == 1  # nothing half-done in history


@pytest.mark.parametrize("stream", [False, True])
def test_max_total_tokens_is_a_cap_for_a_fan_out(priced: OpenRouterDouble, stream: bool) -> None:
    probe = Chat(MODELS[0], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_total_tokens=1)
    with pytest.raises(irouter.BudgetExceeded) as info:
        probe("hi", max_tokens=50)
    worst = info.value.needed
    assert info.value.kind == "tokens"
    chat = Chat(MODELS, SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_total_tokens=int(worst * 2.5))
    with pytest.raises(irouter.MultiModelError) as failed:
        list(chat("hi", max_tokens=50, stream=True)) if stream else chat("hi", max_tokens=50)
    assert len(priced.chat_requests) >= 2
    assert sum(e.total_tokens for e in chat.ledger) <= worst * 2.5
    assert all(e.kind == "tokens" for e in failed.value.errors.values())


def test_without_max_tokens_the_models_longest_answer_is_reserved(priced: OpenRouterDouble) -> None:
    """The catalog's max_completion_tokens (1000 here) bounds a request that sets no max_tokens."""
    chat = Chat(MODELS[0], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_cost=1e-9)
    with pytest.raises(irouter.BudgetExceeded) as info:
        chat("hi")
    assert 1000 * PRICES[1] < info.value.needed < 1000 * PRICES[1] + 100 * PRICES[0]


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_a_budget_stays_a_cap_where_no_catalog_is_at_hand(priced: OpenRouterDouble, how: str) -> None:
    """A chat shipped to a worker (a pickle, on another machine or with another cache) finds no catalog there:
    it still reserves each request's worst case at the prices it was made with, and refuses what does not fit."""
    import copy
    import pickle

    from irouter.catalog import clear_cache

    chat = Chat(MODELS[0], SYSTEM, base_url=priced.base_url, api_key=priced.api_key, max_cost=0.0005)
    shipped = pickle.dumps(chat) if how == "pickle" else None
    copied = copy.deepcopy(chat)
    clear_cache(disk=True)  # the worker's empty cache
    worker = pickle.loads(shipped) if shipped is not None else copied
    worker.api_key = priced.api_key
    with pytest.raises(irouter.BudgetExceeded) as refused:
        worker("hi")  # no max_tokens: the model's 1000 completion tokens cost up to $0.002
    assert refused.value.needed > 1000 * PRICES[1]
    assert priced.chat_requests == []
    assert worker("hi", max_tokens=50) == "You said: hi"  # what fits is sent
    assert len(priced.chat_requests) == 1


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), -1.0])
def test_a_budget_must_be_a_finite_number(priced: OpenRouterDouble, limit: float) -> None:
    """NaN made every request "over budget" with "$0 spent of nan"; infinity could be saved but not loaded. No
    limit is None."""
    connect = {"base_url": priced.base_url, "api_key": priced.api_key}
    for name in ("max_cost", "max_total_tokens"):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative number"):
            Chat(MODELS[0], **{name: limit}, **connect)
    chat = Chat(MODELS[0], max_cost=1.0, **connect)
    with pytest.raises(ValueError, match="max_cost must be a non-negative number"):
        chat.max_cost = limit
    assert chat.max_cost == 1.0
    assert priced.chat_requests == []


def test_the_budgets_catalog_fetch_goes_through_the_chats_client_and_retries(priced: OpenRouterDouble) -> None:
    """The catalog a budget is priced by is fetched like the capability check's: through ``http_client=`` (a
    proxy...), with the chat's ``max_retries``; a catalog that cannot be fetched is said to be so, not said to
    list no price."""
    import httpx2

    connect = {"base_url": priced.base_url, "api_key": priced.api_key}
    priced.queue_get("/models", *[Error(503, "busy")] * 3)
    with httpx2.Client(headers={"X-Via": "proxy"}) as client:
        chat = Chat(MODELS[0], max_cost=1.0, max_retries=3, http_client=client, **connect)
    fetches = [r for r in priced.requests if r.path.endswith("/models")]
    assert [r.headers.get("x-via") for r in fetches] == ["proxy"] * 4  # 3 failures, then the catalog
    assert chat.max_cost == 1.0

    from irouter.catalog import clear_cache

    clear_cache(disk=True)
    priced.queue_get("/models", Error(503, "busy"))
    with pytest.raises(ValueError, match="could not be fetched") as refused:
        Chat(MODELS[0], max_cost=1.0, max_retries=0, **connect)
    assert "allow_unpriced=True" in str(refused.value)
    assert len([r for r in priced.requests if r.path.endswith("/models")]) == 5
    assert priced.chat_requests == []


def test_fallback_models_are_reserved_at_the_dearest_price() -> None:
    """With OpenRouter's fallbacks (``models=[...]``) a dearer model may answer: the reservation is its worst
    case, so the cap holds whichever model answers; a fallback without a price makes the budget refused."""
    dear = model_record("lab/dear", "Dear", 8000, ["text"], "0.0001", "0.0002", ["max_tokens"])
    with OpenRouterDouble(models=[*catalog(), dear], prices=PRICES) as double:
        connect = {"base_url": double.base_url, "api_key": double.api_key}
        chat = Chat(MODELS[0], max_cost=0.01, max_tokens=100, **connect)
        assert chat("hi") == "You said: hi"  # its own worst case fits: about $0.0002
        with pytest.raises(irouter.BudgetExceeded) as refused:
            chat("hi", models=[MODELS[0], "lab/dear"])
        assert refused.value.needed > 100 * 0.0002  # the dear model's completion tokens
        assert len(double.chat_requests) == 1
        assert chat("hi", models=[MODELS[0], MODELS[1]]) == "You said: hi"  # a fallback as cheap fits
        with pytest.raises(ValueError, match="cannot be a cap for lab/unpriced"):
            Chat(MODELS[0], max_cost=0.01, max_tokens=100, models=["lab/unpriced"], **connect)
        with pytest.raises(ValueError, match=r"cannot be a cap for this request .* one of \['lab/model-0', 'lab/unp"):
            chat("hi", models=["lab/unpriced"])  # given to one call: refused then, before sending
        assert len(double.chat_requests) == 2


def test_a_budget_on_an_unpriced_model_is_refused(priced: OpenRouterDouble) -> None:
    connect = {"base_url": priced.base_url, "api_key": priced.api_key}
    with pytest.raises(ValueError, match="allow_unpriced=True") as info:
        Chat(["lab/model-1", "other/unlisted"], max_cost=1.0, **connect)
    assert "other/unlisted" in str(info.value)
    assert "no price" in str(info.value)
    with pytest.raises(ValueError, match="no price"):
        Chat("lab/unpriced", max_cost=1.0, **connect)
    with pytest.raises(ValueError, match="max_tokens"):
        Chat("lab/unpriced", max_total_tokens=1000, **connect)
    Chat("lab/unpriced", max_total_tokens=1000, max_tokens=100, **connect)  # bounded by max_tokens: fine
    chat = Chat("lab/unpriced", **connect)
    with pytest.raises(ValueError, match="allow_unpriced"):
        chat.max_cost = 1.0
    assert chat.max_cost is None
    assert priced.chat_requests == []
    loose = Chat("lab/unpriced", max_cost=1e-9, allow_unpriced=True, **connect)
    assert loose("hi") == "You said: hi"  # nothing spent yet: sent, and it reports its cost
    with pytest.raises(irouter.BudgetExceeded, match="has spent"):
        loose("hi")
    assert Chat.from_dict(loose.to_dict(), api_key=priced.api_key).max_cost == 1e-9  # the opt-out is saved
    with pytest.raises(TypeError, match="budgets belong to a Chat"):
        loose("hi", allow_unpriced=True)
    with pytest.raises(TypeError, match="allow_unpriced must be True or False"):
        Chat("lab/unpriced", allow_unpriced="yes", **connect)  # type: ignore[arg-type]


def test_a_local_server_without_prices_needs_the_opt_out() -> None:
    listed = [model_record("qwen3", "Qwen3", 32768, ["text"], "", "", ["max_tokens"])]  # like llama.cpp: no prices
    with OpenRouterDouble(api_key=None, require_auth=False, models=listed) as local:
        with pytest.raises(ValueError, match="allow_unpriced"):
            Chat("qwen3", base_url=local.base_url, max_cost=0.1)
        Chat("qwen3", base_url=local.base_url, max_cost=0.1, allow_unpriced=True)("hi")
        assert len(local.chat_requests) == 1
