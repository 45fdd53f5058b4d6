"""Where turn-level features meet: fallbacks with the response cache and other endpoints, the conversation log
with `adopt` and ``on_overflow``. Each test is a bug a user hit when two features written apart met."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irouter import Chat, Log
from irouter.catalog import list_models
from irouter.endpoints import register_endpoint, unregister_endpoint
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall, model_record

A, B = "lab/a", "lab/b"


@pytest.fixture
def other() -> Iterator[OpenRouterDouble]:
    """A second server, registered as the endpoint of ``mine/`` models."""
    with OpenRouterDouble() as double:
        register_endpoint("mine/", double.base_url, api_key=double.api_key)
        try:
            yield double
        finally:
            unregister_endpoint("mine/")


# --------------------------------------------------------------------------------------------- the log


def test_adopt_is_what_the_log_and_resume_keep(router: OpenRouterDouble, connect: dict, tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    router.queue("a's answer", model=A)
    router.queue("b's answer", model=B)
    chat = Chat([A, B], log=path, **connect)
    chat("q1")
    chat.adopt(A)
    assert Log(path).get(chat.log_id)["history"] == chat.history  # logged at once
    chat("q2")
    resumed = Chat.resume(log=path, **connect)
    assert resumed.history == chat.history
    assert resumed.history[B][2] == {"role": "assistant", "content": "a's answer"}
    resumed("q3")
    assert [m["content"] for m in router.chat_requests[-1]["messages"]][2] == "a's answer"


def test_adopt_after_tool_steps_logs_the_shorter_history(
    router: OpenRouterDouble, connect: dict, tmp_path: Path
) -> None:
    def look() -> str:
        return "found"

    path = tmp_path / "logs.db"
    router.queue(Text(tool_calls=[ToolCall("look", {}, id="c1")]), "a after tools", model=A)
    chat = Chat([A, B], log=path, tools=[look], **connect)
    chat("q1")
    assert len(chat.history[A]) == 5
    chat.adopt(B)
    chat("q2")
    assert Log(path).get(chat.log_id)["history"] == chat.history
    assert Chat.resume(log=path, **connect).history == chat.history


def catalog() -> list[dict[str, Any]]:
    params = ["max_tokens", "tools"]
    return [
        model_record(A, "Small", 1000, ["text"], "0.000001", "0.000002", params),
        model_record(B, "Summarizer", 100_000, ["text"], "0.000001", "0.000002", params),
    ]


@pytest.mark.parametrize("policy", ["drop_oldest", "summarize"])
def test_every_turn_is_logged_after_old_turns_are_dropped(tmp_path: Path, policy: str) -> None:
    path = tmp_path / "logs.db"
    with OpenRouterDouble(models=catalog()) as router:
        list_models(router.base_url)
        connect = {"base_url": router.base_url, "api_key": router.api_key}
        chat = Chat(A, log=path, on_overflow=policy, summarize_with=B, **connect)
        for i in range(6):
            chat(f"q{i} " + "ww " * 300)
        assert chat.dropped  # old turns went
        logged = Log(path).get(chat.log_id)["history"][A]
        asked = [m["content"].split(" ")[0] for m in logged if m["role"] == "user" and m["content"].startswith("q")]
        assert asked == [f"q{i}" for i in range(6)]  # the log keeps every turn said, the dropped ones too, in order
        assert logged[-2:] == chat.history[-2:]  # the newest turn included
        assert Log(path).search("q5")  # and found
        resumed = Chat.resume(log=path, on_overflow=policy, summarize_with=B, **connect)
        resumed("q6 " + "ww " * 300)  # goes on, making room again as its turn needs
        assert router.chat_requests[-1]["messages"][-1]["content"].startswith("q6 ")
        assert Log(path).get(resumed.log_id)["history"][A][-2]["content"].startswith("q6 ")


# --------------------------------------------------------------------------------------------- fallbacks


def test_a_fallback_answer_from_the_cache_is_still_a_fallback(router: OpenRouterDouble, connect: dict) -> None:
    router.queue(Error(500), Error(500), model=A)
    first = Chat(A, fallbacks=[B], max_retries=0, cache_responses=True, temperature=0, **connect)
    first("hello")
    again = Chat(A, fallbacks=[B], max_retries=0, cache_responses=True, temperature=0, **connect)
    assert again("hello") == "You said: hello"
    assert [b["model"] for b in router.chat_requests] == [A, B, A]  # b's answer came from the cache
    hit = again.ledger[-1]
    assert (hit.model, hit.fallback_for, hit.cached) == (B, A, True)
    assert again.history[-1] == {"role": "assistant", "content": "You said: hello", "model": B}


def test_a_fallback_on_another_endpoint_is_sent_there(
    router: OpenRouterDouble, other: OpenRouterDouble, connect: dict
) -> None:
    router.queue(Error(500), model=A)
    chat = Chat(A, fallbacks=["mine/m"], max_retries=0, **connect)
    assert chat("hi") == "You said: hi"
    assert [b["model"] for b in router.chat_requests] == [A]  # never to OpenRouter
    assert [b["model"] for b in other.chat_requests] == ["m"]  # its own server, its own name
    per_call = Chat(A, max_retries=0, **connect)
    router.queue(Error(500), model=A)
    assert per_call("hi", fallbacks=["mine/m"]) == "You said: hi"
    assert [b["model"] for b in other.chat_requests] == ["m", "m"]


def test_a_chat_on_another_endpoint_falls_back_to_openrouter(
    router: OpenRouterDouble, other: OpenRouterDouble, connect: dict
) -> None:
    other.queue(Error(500), model="m")
    chat = Chat("mine/m", fallbacks=[A], max_retries=0, **connect)
    assert chat("hi") == "You said: hi"
    assert [b["model"] for b in other.chat_requests] == ["m"]
    assert [b["model"] for b in router.chat_requests] == [A]
    assert router.requests[-1].headers["authorization"] == f"Bearer {router.api_key}"


def test_a_judge_answered_from_the_cache_is_still_a_review(router: OpenRouterDouble, connect: dict) -> None:
    import json

    def asked() -> Chat:
        router.queue("a1", model=A)
        router.queue("b1", model=B)
        chat: Chat = Chat([A, B], **connect)
        chat("q")
        return chat

    judge = "lab/judge"
    scores = json.dumps({"A": {"reason": "r", "score": 7}, "B": {"reason": "r", "score": 3}})
    router.queue(scores, model=judge)
    first = asked().review(judge, swap=False, cache_responses=True, temperature=0)
    chat = asked()
    again = chat.review(judge, swap=False, cache_responses=True, temperature=0)
    assert [b["model"] for b in router.chat_requests].count(judge) == 1  # the second verdict came from the cache
    assert again.scores == first.scores == {A: 7.0, B: 3.0}
    hit = chat.ledger[-1]
    assert (hit.model, hit.purpose, hit.cached) == (judge, "review", True)
    assert again.verdicts[0].cost == 0.0  # the verdict knows its (free) request
    assert again.cost == 0.0
    assert chat.cost == {A: chat.ledger[0].cost, B: chat.ledger[1].cost, judge: 0.0}


def test_a_fallback_pinned_against_provider_is_refused_before_any_request(
    router: OpenRouterDouble, connect: dict
) -> None:
    with pytest.raises(ValueError, match="'lab/a@together' pins provider 'together'"):
        Chat(A, provider={"only": ["azure"]}, fallbacks=[f"{A}@together"], **connect)
    chat = Chat(A, provider={"only": ["azure"]}, max_retries=0, **connect)
    router.queue(Error(500), model=A)
    with pytest.raises(ValueError, match="pins provider 'together'"):
        chat("hi", fallbacks=[f"{A}@together"])
    assert router.chat_requests == []
    assert chat("hi", fallbacks=[f"{A}@azure"]) == "You said: hi"
    assert [(b["model"], b["provider"]["only"]) for b in router.chat_requests] == [(A, ["azure"]), (A, ["azure"])]


def test_a_calls_unpriced_fallback_is_refused_before_any_request() -> None:
    priced = model_record(A, "A", 8000, ["text"], "0.000001", "0.000002", ["max_tokens"])
    unpriced = model_record(B, "B", 8000, ["text"], "", "", ["max_tokens"])
    with OpenRouterDouble(models=[priced, unpriced]) as router:
        list_models(router.base_url)
        chat = Chat(A, max_cost=1.0, max_retries=0, max_tokens=10, base_url=router.base_url, api_key=router.api_key)
        router.queue(Error(502), model=A)
        with pytest.raises(ValueError, match=f"max_cost= cannot be a cap for {B}"):
            chat("hello", fallbacks=[B])
        assert router.chat_requests == []
        assert chat.ledger == []


def test_the_summary_request_counts_in_cost_and_usage(tmp_path: Path) -> None:
    with OpenRouterDouble(models=catalog()) as router:
        list_models(router.base_url)
        chat = Chat(A, on_overflow="summarize", summarize_with=B, base_url=router.base_url, api_key=router.api_key)
        for i in range(4):
            chat(f"q{i} " + "ww " * 300)
        summaries = [e for e in chat.ledger if e.model == B]
        assert summaries
        assert all(e.purpose == "summarize" for e in summaries)
        assert chat.cost == pytest.approx(sum(e.cost for e in chat.ledger))
        assert chat.usage["total_tokens"] == sum(e.total_tokens for e in chat.ledger)


def test_a_budgeted_chat_refuses_an_unpriced_summarizer_up_front() -> None:
    unpriced = [*catalog()[:1], model_record(B, "B", 100_000, ["text"], "", "", ["max_tokens"])]
    with OpenRouterDouble(models=unpriced) as router:
        list_models(router.base_url)
        connect = {"base_url": router.base_url, "api_key": router.api_key}
        with pytest.raises(ValueError, match=f"max_cost= cannot be a cap for {B}"):
            Chat(A, on_overflow="summarize", summarize_with=B, max_cost=1.0, **connect)
        chat = Chat(A, max_cost=1.0, **connect)
        with pytest.raises(ValueError, match=f"max_cost= cannot be a cap for {B}"):
            chat("hi", on_overflow="summarize", summarize_with=B)
        assert chat("hi", summarize_with=B) == "You said: hi"  # no summary can be asked for: nothing to price
        assert len(router.chat_requests) == 1


# --------------------------------------------------------------------------------------------- compare, adopt, report

BIG, JUDGE = "lab/big", "lab/judge"


def windows() -> list[dict[str, Any]]:
    params = ["max_tokens", "tools", "response_format", "structured_outputs"]
    return [
        *catalog()[:1],
        model_record(BIG, "Big", 100_000, ["text"], "0.000001", "0.000002", params),
        model_record(JUDGE, "Judge", 100_000, ["text"], "0.000001", "0.000002", params),
    ]


@pytest.mark.parametrize("policy", ["drop_oldest", "summarize"])
def test_a_model_that_dropped_old_turns_is_still_at_the_last_turn(policy: str) -> None:
    import json

    with OpenRouterDouble(models=windows()) as router:
        list_models(router.base_url)
        connect = {"base_url": router.base_url, "api_key": router.api_key}
        chat = Chat([A, BIG], on_overflow=policy, summarize_with=JUDGE, **connect)
        for i in range(4):
            chat(f"q{i} " + "ww " * 300)
        assert chat.dropped[A]  # the small window made room
        assert not chat.dropped[BIG]  # the big one did not need to
        router.queue(json.dumps({k: {"reason": "r", "score": 5} for k in "AB"}), model=JUDGE)
        review = chat.review(JUDGE, swap=False)
        assert set(review.answers) == {A, BIG}  # both answered the last question
        assert chat.report().entries[0].error is None
        chat.adopt(BIG)
        assert chat.history[A][-1] == chat.history[BIG][-1]
        assert chat.history[A][-2]["content"].startswith("q3 ")


def test_a_report_counts_a_models_own_turn_not_judges_or_fallbacks(router: OpenRouterDouble, connect: dict) -> None:
    import json

    router.queue(Error(500), model=A)
    chat = Chat([A, B], fallbacks=["lab/c"], max_retries=0, **connect)
    chat("q")
    router.queue(json.dumps({k: {"reason": "r", "score": 5} for k in "AB"}), model=B)
    chat.review(B, swap=False)  # a judge that is one of the chat's models
    turn = {e.model: e for e in chat.ledger if e.purpose is None and e.error is None}
    entries = {e.model: e for e in chat.report().entries}
    assert entries[A].cost == pytest.approx(turn["lab/c"].cost)  # answered by its fallback
    assert entries[A].tokens == turn["lab/c"].total_tokens
    assert entries[B].cost == pytest.approx(turn[B].cost)  # not the judging request
    assert entries[B].tokens == turn[B].total_tokens


def test_judges_and_chairmen_are_logged_at_once(router: OpenRouterDouble, connect: dict, tmp_path: Path) -> None:
    import asyncio
    import json

    from irouter import AsyncChat

    path = tmp_path / "logs.db"
    chat = Chat([A, B], log=path, **connect)
    chat("q")
    router.queue(json.dumps({k: {"reason": "r", "score": 5} for k in "AB"}), model=JUDGE)
    chat.review(JUDGE, swap=False)
    chat.synthesize(JUDGE)
    logged = [(e["model"], e["purpose"]) for e in Log(path).get(chat.log_id)["ledger"]]
    assert sorted(logged[:2]) == [(A, None), (B, None)]  # the turn's requests end in either order
    assert logged[2:] == [(JUDGE, "review"), (JUDGE, "synthesize")]

    async def main() -> Any:
        achat = AsyncChat([A, B], log=path, **connect)
        await achat("q")
        router.queue(json.dumps({k: {"reason": "r", "score": 5} for k in "AB"}), model=JUDGE)
        await achat.review(JUDGE, swap=False)
        await achat.synthesize(JUDGE)
        return achat.log_id

    logged = [(e["model"], e["purpose"]) for e in Log(path).get(asyncio.run(main()))["ledger"]]
    assert sorted(logged[:2]) == [(A, None), (B, None)]  # the turn's requests end in either order
    assert logged[2:] == [(JUDGE, "review"), (JUDGE, "synthesize")]


def test_an_async_chat_falls_back_to_another_endpoint(
    router: OpenRouterDouble, other: OpenRouterDouble, connect: dict
) -> None:
    import asyncio

    from irouter import AsyncChat

    async def main() -> Any:
        router.queue(Error(500), Error(500), model=A)
        chat = AsyncChat(A, fallbacks=["mine/m"], max_retries=0, **connect)
        streamed = [piece async for piece in chat("one", stream=True)]
        return await chat("two"), "".join(streamed), chat.history[-1]

    answer, streamed, last = asyncio.run(main())
    assert (answer, streamed) == ("You said: two", "You said: one")
    assert last == {"role": "assistant", "content": "You said: two", "model": "mine/m"}
    assert [b["model"] for b in other.chat_requests] == ["m", "m"]
    assert [b["model"] for b in router.chat_requests] == [A, A]


def test_an_answer_that_failed_its_format_is_not_served_from_the_cache(router: OpenRouterDouble, connect: dict) -> None:
    from typing import TypedDict

    from irouter import StructuredOutputError

    class City(TypedDict):
        name: str

    router.queue("not json", '{"name": "Paris"}', model=A)
    chat = Chat(A, cache_responses=True, temperature=0, **connect)
    with pytest.raises(StructuredOutputError):
        chat("Capital of France?", response_format=City)
    assert chat("Capital of France?", response_format=City) == {"name": "Paris"}  # asked again, not the bad one
    assert len(router.chat_requests) == 2
    again = Chat(A, cache_responses=True, temperature=0, **connect)
    assert again("Capital of France?", response_format=City) == {"name": "Paris"}  # the good answer is kept
    assert len(router.chat_requests) == 2


@pytest.mark.parametrize("value", [123, {A: 1}, {A}])
def test_fallbacks_that_are_not_slugs_are_refused_clearly(router: OpenRouterDouble, connect: dict, value: Any) -> None:
    with pytest.raises(TypeError, match="fallbacks must be a model slug or a list of slugs"):
        Chat(B, fallbacks=value, **connect)
    with pytest.raises(TypeError, match="fallbacks must be a model slug or a list of slugs"):
        Chat(B, **connect)("hi", fallbacks=value)
    assert router.chat_requests == []


@pytest.mark.parametrize("duplicate", ["pickle", "deepcopy"])
def test_a_copied_chat_is_logged_as_a_conversation_of_its_own(
    router: OpenRouterDouble, connect: dict, tmp_path: Path, duplicate: str
) -> None:
    """Two chats going on from one conversation must not write over each other's messages in the log."""
    import copy
    import pickle

    path = tmp_path / "logs.db"
    chat = Chat(A, log=path, **connect)
    chat("q1")
    twin = pickle.loads(pickle.dumps(chat)) if duplicate == "pickle" else copy.deepcopy(chat)
    twin.api_key = router.api_key  # never pickled
    chat("from the original")
    twin("from the copy")
    assert twin.log_id != chat.log_id
    assert Log(path).get(chat.log_id)["history"] == {A: chat.history}
    assert Log(path).get(twin.log_id)["history"] == {A: twin.history}
