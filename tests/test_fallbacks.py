"""Fallbacks (``fallbacks=[...]``, ``fallback_on=``): the order models are tried in, what the ledger and history
keep, which failures pass a turn on, and the streaming and async paths."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from irouter import (
    AsyncCall,
    AsyncChat,
    AuthenticationError,
    BudgetExceeded,
    Call,
    Chat,
    ContextWindowError,
    ServerError,
    UnknownModelError,
)
from irouter.catalog import list_models
from irouter.testing import Error, OpenRouterDouble, Text, model_record

A, B, C = "lab/a", "lab/b", "lab/c"


def models_asked(router: OpenRouterDouble) -> list[str]:
    return [body["model"] for body in router.chat_requests]


def test_a_failing_model_passes_the_turn_on_after_its_retries(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(502), Error(502), model=A)
    router.queue(Error(503, "Overloaded"), Error(503, "Overloaded"), model=B)
    router.queue("from c", model=C)
    chat = Chat(A, fallbacks=[B, C], max_retries=1, max_retry_wait=1, **connect)
    assert chat("hello") == "from c"
    assert models_asked(router) == [A, A, B, B, C]  # each model's retries first, then the next model
    assert chat.history[-1] == {"role": "assistant", "content": "from c", "model": C}
    assert chat.history[-2] == {"role": "user", "content": "hello"}
    ledger = chat.ledger
    assert [(e.model, e.fallback_for, e.finish_reason) for e in ledger] == [
        (A, None, "error"),
        (B, A, "error"),
        (C, A, "stop"),
    ]
    assert ledger[0].error.startswith("ServerError: 502")
    assert "Overloaded" in ledger[1].error
    assert chat.usage["total_tokens"] == ledger[2].total_tokens > 0  # all under the chat's slug
    assert chat.cost == pytest.approx(ledger[2].cost)


def test_the_writer_stays_in_history_but_is_never_sent(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(500), model=A)
    router.queue("b wrote this", model=B)
    chat = Chat(A, fallbacks=[B], max_retries=0, **connect)
    chat("one")
    chat("two")
    assert chat.history[2] == {"role": "assistant", "content": "b wrote this", "model": B}
    assert chat.history[4] == {"role": "assistant", "content": "You said: two", "model": A}  # signed too
    second = router.chat_requests[-1]
    assert second["model"] == A
    assert {"role": "assistant", "content": "b wrote this"} in second["messages"]
    assert all("model" not in m for m in second["messages"])
    saved = json.loads(json.dumps(chat.to_dict()))
    assert Chat.from_dict(saved, api_key=router.api_key).history == chat.history


def test_fallback_on_rejects_an_answer(router: OpenRouterDouble, connect: dict) -> None:
    router.queue("Sorry, I cannot help.", model=A)
    router.queue("Here is the answer.", model=B)
    seen = []

    def refused(answer: str) -> bool:
        seen.append(answer)
        return answer.startswith("Sorry")

    chat = Chat(A, fallbacks=[B], fallback_on=refused, **connect)
    assert chat("hello") == "Here is the answer."
    assert seen == ["Sorry, I cannot help."]  # the last model's answer stands: nothing left to try
    assert models_asked(router) == [A, B]
    assert [(e.model, e.fallback_for) for e in chat.ledger] == [(A, None), (B, A)]  # the rejected one was billed
    assert [m["content"] for m in chat.history[1:]] == ["hello", "Here is the answer."]


def test_the_last_models_rejected_answer_stands(router: OpenRouterDouble, connect: dict) -> None:
    router.queue("no", model=A)
    router.queue("no either", model=B)
    chat = Chat(A, fallbacks=[B], fallback_on=lambda answer: answer.startswith("no"), **connect)
    assert chat("hello") == "no either"


def test_errors_another_model_would_share_are_raised_at_once(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(401, "No auth credentials found"), model=A)
    chat = Chat(A, fallbacks=[B], **connect)
    with pytest.raises(AuthenticationError):
        chat("hello")
    assert models_asked(router) == [A]


def test_when_every_model_fails_the_last_error_is_raised_with_all_of_them(
    router: OpenRouterDouble, connect: dict
) -> None:
    router.queue(Error(502), model=A)
    router.queue(Error(504), model=B)
    chat = Chat(A, fallbacks=[B], max_retries=0, **connect)
    with pytest.raises(ServerError) as info:
        chat("hello")
    assert info.value.status == 504
    assert list(info.value.attempts) == [A, B]
    assert len(chat.history) == 1  # nothing kept


def test_per_call_fallbacks_and_calls(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(502), Error(502), model=A)
    router.queue("b", "b again", model=B)
    chat = Chat(A, max_retries=0, **connect)
    assert chat("hello", fallbacks=[B]) == "b"
    assert Call(A, max_retries=0, fallbacks=B, **connect)("hello") == "b again"
    assert models_asked(router) == [A, B, A, B]


def test_a_context_window_too_small_goes_to_a_larger_model_without_a_request() -> None:
    small = model_record(A, "Small", 500, ["text"], "0.000001", "0.000002", ["max_tokens"])
    big = model_record(B, "Big", 100_000, ["text"], "0.000001", "0.000002", ["max_tokens"])
    with OpenRouterDouble(models=[small, big]) as router:
        list_models(router.base_url)
        chat = Chat(A, fallbacks=[B], base_url=router.base_url, api_key=router.api_key)
        assert chat("ww " * 1000).startswith("You said:")
        assert models_asked(router) == [B]
        assert chat.ledger[0].error.startswith("ContextWindowError")
        with pytest.raises(ContextWindowError):
            Chat(A, base_url=router.base_url, api_key=router.api_key)("ww " * 1000)


def test_streamed_turn_falls_back_before_its_first_piece(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(503), model=A)
    router.queue(Text("streamed by b"), model=B)
    chat = Chat(A, fallbacks=[B], max_retries=0, **connect)
    assert "".join(chat("hello", stream=True)) == "streamed by b"
    assert chat.history[-1]["model"] == B
    with pytest.raises(ValueError, match="fallback_on= cannot judge a streamed answer"):
        chat("again", stream=True, fallback_on=lambda answer: False)
    assert len(router.chat_requests) == 2


def test_async_chat_and_call_fall_back(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(502), Error(502), Error(502), model=A)
    router.queue("async b", "streamed b", "call b", model=B)

    async def main() -> list[Any]:
        chat = AsyncChat(A, fallbacks=[B], max_retries=0, **connect)
        first = await chat("hello")
        second = "".join([piece async for piece in chat("again", stream=True)])
        third = await AsyncCall(A, fallbacks=[B], max_retries=0, **connect)("hi")
        return [first, second, third, chat.history]

    first, second, third, history = asyncio.run(main())
    assert (first, second, third) == ("async b", "streamed b", "call b")
    assert [m.get("model") for m in history if m["role"] == "assistant"] == [B, B]
    assert models_asked(router) == [A, B, A, B, A, B]


def test_fallbacks_are_checked_before_any_request(router: OpenRouterDouble, connect: dict) -> None:
    with pytest.raises(ValueError, match="non-empty slug"):
        Chat(A, fallbacks=[" b"], **connect)
    with pytest.raises(TypeError, match="fallback_on must be a plain function"):
        Chat(A, fallbacks=[B], fallback_on="no", **connect)
    with pytest.raises(TypeError, match=r"fallbacks= is not an option of call\.batch"):
        Call(A, **connect).batch(["x"], fallbacks=[B])
    assert router.chat_requests == []


def test_budgets_hold_over_every_attempt() -> None:
    """A priced chat refuses an unpriced fallback up front; each attempt reserves against the same budget."""
    priced = model_record(A, "A", 8000, ["text"], "0.000001", "0.000002", ["max_tokens"])
    unpriced = model_record(C, "C", 8000, ["text"], "", "", ["max_tokens"])
    also = model_record(B, "B", 8000, ["text"], "0.000001", "0.000002", ["max_tokens"])
    with OpenRouterDouble(models=[priced, also, unpriced]) as router:
        list_models(router.base_url)
        connect = {"base_url": router.base_url, "api_key": router.api_key}
        with pytest.raises(ValueError, match=f"max_cost= cannot be a cap for {C}"):
            Chat(A, max_cost=1.0, fallbacks=[C], **connect)
        router.queue(Error(502), model=A)
        chat = Chat(A, max_cost=1.0, fallbacks=[B], max_retries=0, max_tokens=10, **connect)
        assert chat("hello").startswith("You said:")
        assert chat.cost == pytest.approx(sum(e.cost for e in chat.ledger))
        assert chat.cost > 0


def test_a_misspelt_fallback_is_refused_before_any_request(router: OpenRouterDouble, connect: dict) -> None:
    """The capability check (here asked for: the double is not OpenRouter) looks the fallbacks up too."""
    chat = Chat("openai/gpt-4o-mini", fallbacks=["openai/gpt-4o-mimi"], check_capabilities=True, **connect)
    with pytest.raises(UnknownModelError, match="gpt-4o-mimi"):
        chat("hello")
    assert router.chat_requests == []


def test_a_budget_stop_is_not_passed_on() -> None:
    """A request the budget refuses is not sent, and the turn does not go to a fallback (it would pass the cap too)."""
    priced = [model_record(m, m, 8000, ["text"], "0.001", "0.002", ["max_tokens"]) for m in (A, B)]
    with OpenRouterDouble(models=priced) as router:
        list_models(router.base_url)
        chat = Chat(A, max_cost=0.01, fallbacks=[B], max_tokens=100, base_url=router.base_url, api_key=router.api_key)
        with pytest.raises(BudgetExceeded):
            chat("hello " * 20)
        assert router.chat_requests == []
