"""Compare, judge, adopt over HTTP against the OpenRouter double: `Chat.review` (blind and swapped judge prompts,
verdicts combined as documented, failures as values, panels, a judge among the competitors, costs in the ledger,
budgets), `Chat.synthesize`, and `Chat.adopt` (histories well-formed and equal from the adopted point; atomic)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import irouter
from irouter import AsyncChat, BudgetExceeded, Chat, Ranked, Review, StructuredOutputError, Verdict
from irouter._persist import check_history
from irouter.review import MASK, combine, labels, mask, names
from irouter.testing import Error, OpenRouterDouble, Text, ToolCall

A, B, C = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct", "google/gemini-2.0-flash-exp:free"
J, K = "anthropic/claude-sonnet-4.5", "moonshotai/kimi-k2:free"
"""Competitors, and judges (all in the double's catalog)."""
ANSWERS = {
    A: "Paris. (I am GPT 4o mini, by OpenAI.)",
    B: "It is Paris; meta-llama/llama-3.3-70b-instruct here.",
    C: "Paris, says Gemini-2.0-flash-exp.",
}


def verdict(*scores: float, reasons: list[str] | None = None) -> str:
    """A judge's JSON reply: scores for answers A, B, C... in the order shown."""
    tags = labels(len(scores))
    reasons = reasons or [f"reason {t}" for t in tags]
    return json.dumps({t: {"reason": r, "score": s} for t, s, r in zip(tags, scores, reasons, strict=True)})


def asked(router: OpenRouterDouble, models: tuple[str, ...] = (A, B, C), question: str = "Capital of France?") -> Chat:
    """A chat of ``models`` after one turn, each model answering with its `ANSWERS` text."""
    for model in models:
        router.queue(ANSWERS[model], model=model)
    chat: Chat[Any] = Chat(list(models), base_url=router.base_url, api_key=router.api_key)
    chat(question)
    return chat


def judge_bodies(router: OpenRouterDouble, judge: str = J, skip: int = 0) -> list[dict[str, Any]]:
    """The requests a judge received (after the first ``skip`` of them)."""
    return [b for b in router.chat_requests if b["model"] == judge][skip:]


def by_model(scores: dict[str, float]) -> Any:
    """A judge's reply as a function of its request: each model's score at the label its answer has there (the
    same verdict whichever pass gets it)."""
    models = list(scores)

    def reply(body: dict[str, Any]) -> Text:
        owners = [next(m for m in models if t in (ANSWERS[m], mask(ANSWERS[m], models))) for t in shown_answers(body)]
        return Text(verdict(*(scores[m] for m in owners)))

    return reply


def judged_by(router: OpenRouterDouble, judge: str, scores: dict[str, float], times: int = 2) -> None:
    """Queue ``judge``'s replies for one review (two passes by default): ``scores`` per model."""
    router.queue(*[by_model(scores)] * times, model=judge)


def per_pass(models: tuple[str, ...], first: Any, second: Any) -> Any:
    """A judge's reply chosen by the pass (its two requests run at once, in either order): ``first`` when the
    answers are shown in the chat's order, ``second`` when reversed."""
    lead = models[0]

    def reply(body: dict[str, Any]) -> Any:
        forward = shown_answers(body)[0] in (ANSWERS[lead], mask(ANSWERS[lead], list(models)))
        return first if forward else second

    return reply


def passes(router: OpenRouterDouble, judge: str = J, skip: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    """A judge's two requests: the one in the chat's order, then the swapped one."""
    bodies = judge_bodies(router, judge, skip)
    assert len(bodies) == 2
    forward = [b for b in bodies if shown_answers(b)[0] in (ANSWERS[A], mask(ANSWERS[A], [A, B, C]))]
    assert len(forward) == 1
    return forward[0], next(b for b in bodies if b is not forward[0])


def shown_answers(body: dict[str, Any]) -> list[str]:
    """The answers' texts in the order a judge request shows them."""
    import re

    text = body["messages"][-1]["content"]
    return re.findall(r'<answer label="[A-Z]+"[^>]*>\n(.*?)\n</answer>', text, re.S)


# --------------------------------------------------------------------------------------------- blind and swap


def test_blind_judge_prompts_name_no_model(router: OpenRouterDouble) -> None:
    chat = asked(router)
    judged_by(router, J, {A: 8, B: 5, C: 2})
    review = chat.review(J)
    bodies = judge_bodies(router)
    assert len(bodies) == 2
    for body in bodies:
        sent = json.dumps(body["messages"]).lower()
        for model in (A, B, C):
            for name in names(model):
                assert name.lower() not in sent, (name, sent)
        assert "gpt 4o mini" not in sent  # spelt with spaces
        assert MASK in sent
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["A", "B", "C"]
    assert review.answers == ANSWERS  # the answers themselves stay as the models wrote them
    assert review.blind
    assert review.judges == [J]


@given(
    st.lists(
        st.one_of(
            st.text("abcdefgh", min_size=1, max_size=6),
            st.sampled_from([n for m in (A, B, C) for n in names(m)]).flatmap(
                lambda n: st.sampled_from([n, n.upper(), n.title(), n.replace("-", " ")])
            ),
        ),
        max_size=12,
    )
)
def test_masking_leaves_no_competitor_name(words: list[str]) -> None:
    masked = mask(" ".join(words) + ".", [A, B, C]).lower()
    for model in (A, B, C):
        for name in names(model):
            assert name.lower() not in masked
            assert name.lower().replace("-", " ") not in masked


def test_named_judge_prompts_show_the_models(router: OpenRouterDouble) -> None:
    chat = asked(router)
    judged_by(router, J, {A: 8, B: 5, C: 2})
    chat.review(J, blind=False)
    for body in judge_bodies(router):
        text = body["messages"][-1]["content"]
        for model in (A, B, C):
            assert f'model="{model}"' in text
            assert ANSWERS[model] in text  # not masked


def test_the_second_pass_reverses_the_order(router: OpenRouterDouble) -> None:
    chat = asked(router)
    judged_by(router, J, {A: 8, B: 5, C: 2})
    review = chat.review(J, criteria="Only correctness.")
    first, second = passes(router)
    assert shown_answers(first) == [mask(ANSWERS[m], [A, B, C]) for m in (A, B, C)]
    assert shown_answers(second) == [mask(ANSWERS[m], [A, B, C]) for m in (C, B, A)]
    assert "Only correctness." in first["messages"][-1]["content"]
    assert [(v.order, v.swapped) for v in review.verdicts] == [((A, B, C), False), ((C, B, A), True)]
    assert first["messages"][-1]["content"].startswith("<question>\nCapital of France?\n</question>")


def test_no_swap_judges_once(router: OpenRouterDouble) -> None:
    chat = asked(router)
    router.queue(verdict(8, 5, 2), model=J)
    review = chat.review(J, swap=False)
    assert len(judge_bodies(router)) == 1
    assert len(review.verdicts) == 1
    assert review.scores == {A: 8.0, B: 5.0, C: 2.0}


# --------------------------------------------------------------------------------------------- combining


def test_verdicts_combine_into_mean_scores_and_shared_ranks(router: OpenRouterDouble) -> None:
    chat = asked(router)
    # pass 1 shows A, B, C; pass 2 shows C, B, A: A gets 9 then 5 (mean 7), B 6 then 8 (7), C 3 then 4 (3.5)
    reply = per_pass(
        (A, B, C), verdict(9, 6, 3, reasons=["a1", "b1", "c1"]), verdict(4, 8, 5, reasons=["c2", "b2", "a2"])
    )
    router.queue(reply, reply, model=J)
    review = chat.review(J)
    assert review.ranking == [
        Ranked(A, 1, 7.0, "a1 / a2"),
        Ranked(B, 1, 7.0, "b1 / b2"),  # a tie shares the rank; the chat's order among equals
        Ranked(C, 3, 3.5, "c1 / c2"),
    ]
    assert review.best == A
    assert [v.scores for v in review.verdicts] == [{A: 9, B: 6, C: 3}, {C: 4, B: 8, A: 5}]


def test_a_panel_averages_over_judges_and_passes(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    judged_by(router, J, {A: 10, B: 0})
    judged_by(router, K, {A: 4, B: 6})
    review = chat.review([J, K])
    assert review.judges == [J, K]
    assert [(v.judge, v.swapped) for v in review.verdicts] == [(J, False), (J, True), (K, False), (K, True)]
    assert review.scores == {A: 7.0, B: 3.0}
    assert [r.rank for r in review.ranking] == [1, 2]


@given(
    st.lists(
        st.lists(st.integers(0, 10), min_size=3, max_size=3),
        min_size=1,
        max_size=5,
    )
)
def test_combining_is_the_mean_and_ranks_count_better_means(rows: list[list[int]]) -> None:
    models = [A, B, C]
    verdicts = [Verdict(J, tuple(models), False, dict(zip(models, row, strict=True))) for row in rows]
    verdicts.append(Verdict(J, tuple(models), True, error=StructuredOutputError("bad", text="x")))  # counts for nothing
    ranking = combine(models, verdicts)
    means = {m: sum(r[i] for r in rows) / len(rows) for i, m in enumerate(models)}
    assert [r.model for r in ranking] == sorted(models, key=lambda m: (-means[m], models.index(m)))
    for r in ranking:
        assert r.score == pytest.approx(means[r.model])
        assert r.rank == 1 + sum(1 for m in models if means[m] > means[r.model] + 1e-9)


# --------------------------------------------------------------------------------------------- failures


def test_a_failed_judge_is_an_error_value(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    reply = per_pass((A, B), Error(400, "Provider returned error"), "this is not JSON")
    router.queue(reply, reply, model=J)
    judged_by(router, K, {A: 7, B: 3})
    review = chat.review([J, K])
    errors = {(v.judge, v.swapped): v.error for v in review.errors}
    assert isinstance(errors[(J, False)], irouter.BadRequestError)
    assert isinstance(errors[(J, True)], StructuredOutputError)
    assert review.scores == {A: 7.0, B: 3.0}  # the other judge's verdicts still count
    assert "failed: " + J in str(review)
    data = review.to_dict()
    json.dumps(data)
    assert data["verdicts"][0]["error"]["type"] == "BadRequestError"


def test_a_score_outside_the_scale_fails_that_verdict(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    reply = per_pass((A, B), verdict(12, 3), verdict(3, 7))
    router.queue(reply, reply, model=J)
    review = chat.review(J)
    assert isinstance(review.verdicts[0].error, StructuredOutputError)
    assert "outside 0..10" in str(review.verdicts[0].error)
    assert review.scores == {A: 7.0, B: 3.0}


def test_when_every_judge_fails_the_ranking_is_empty(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    router.queue(Error(400, "no"), Error(400, "no"), model=J)
    review = chat.review(J)
    assert review.ranking == []
    assert review.best is None
    assert len(review.errors) == 2


def test_a_panel_runs_at_once(router: OpenRouterDouble) -> None:
    """Each judge's reply waits until all four judge requests have arrived: a sequential panel would break the
    barrier (its wait times out) and fail every verdict."""
    chat = asked(router, (A, B))
    barrier = threading.Barrier(4, timeout=10)

    def together(body: dict[str, Any]) -> Text:
        barrier.wait()
        return Text(verdict(5, 5))

    router.queue(together, together, model=J)
    router.queue(together, together, model=K)
    review = chat.review([J, K])
    assert review.errors == []
    assert review.scores == {A: 5.0, B: 5.0}


def test_a_judge_may_be_a_competitor(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    before = json.loads(json.dumps(chat.history))
    judged_by(router, A, {A: 4, B: 9})
    review = chat.review(A)
    assert review.scores == {B: 9.0, A: 4.0}
    bodies = judge_bodies(router, A, skip=1)  # after A's own turn
    assert len(bodies) == 2
    for body in bodies:
        assert [m["role"] for m in body["messages"]] == ["system", "user"]  # not A's history
        assert "tools" not in body
    assert chat.history == before  # no history changed
    judged = [e for e in chat.ledger if e.purpose == "review"]
    assert [e.model for e in judged] == [A, A]
    turn = [e for e in chat.ledger if e.purpose is None and e.model == A]
    assert chat.cost[A] == pytest.approx(sum(e.cost for e in [*turn, *judged]))  # the judge's requests add to its line


def test_judge_costs_are_in_the_ledger_and_the_cost(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    turn_cost = dict(chat.cost)
    router.queue(
        Text(verdict(6, 4), usage={"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "cost": 0.25})
    )
    router.queue(
        Text(verdict(4, 6), usage={"prompt_tokens": 100, "completion_tokens": 30, "total_tokens": 130, "cost": 0.5})
    )
    review = chat.review(J)
    judged = [e for e in chat.ledger if e.purpose == "review"]
    assert sorted(e.total_tokens for e in judged) == [120, 130]  # the two passes ran at once: either order
    assert [e.model for e in judged] == [J, J]
    assert review.cost == 0.75 == sum(e.cost for e in judged)
    assert chat.cost == {**turn_cost, J: pytest.approx(review.cost)}  # a line of its own, after the models
    assert chat.usage[J]["total_tokens"] == 250
    assert sorted(v.cost for v in review.verdicts) == pytest.approx(sorted(e.cost for e in judged))


def test_one_model_chat_cost_includes_its_judge(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat(A, **connect)
    chat("Capital of France?")
    spent = chat.cost
    router.queue(verdict(8), model=J)
    review = chat.review(J)  # one answer: one pass (nothing to swap)
    assert len(review.verdicts) == 1
    assert review.scores == {A: 8.0}
    assert chat.cost == pytest.approx(spent + review.cost)
    assert chat.usage["total_tokens"] == sum(e.total_tokens for e in chat.ledger)


def test_the_budget_applies_to_judges(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat([A, B], **connect, max_cost=0.01, max_tokens=50)
    router.queue(ANSWERS[A], model=A)
    router.queue(ANSWERS[B], model=B)
    chat("Capital of France?")
    sent = len(router.chat_requests)
    review = chat.review(J, max_tokens=1000)  # up to 1000 tokens at $15/M: more than is left
    assert all(isinstance(v.error, BudgetExceeded) for v in review.verdicts)
    assert review.ranking == []
    assert len(router.chat_requests) == sent  # nothing was sent
    judged_by(router, J, {A: 6, B: 4})
    assert chat.review(J, max_tokens=10).scores == {A: 6.0, B: 4.0}  # small enough to fit


def test_judges_do_not_take_the_chats_turn_defaults(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def weather(city: str) -> str:
        """The weather."""
        return "sunny"

    chat = Chat([A, B], **connect, temperature=0.9, extra_headers={"X-Title": "mine"})
    router.queue("Paris.", "Paris.")
    chat("Capital of France?", tools=[weather], tool_choice="none")
    router.queue(verdict(5, 5), verdict(5, 5), model=J)
    chat.review(J, temperature=0)
    body = judge_bodies(router)[0]
    assert body["temperature"] == 0
    assert "tools" not in body
    assert router.requests[-1].headers["x-title"] == "mine"  # how to reach the server: kept


def test_review_checks_before_sending(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat([A, B], **connect)
    with pytest.raises(ValueError, match="no turn to compare yet"):
        chat.review(J)
    chat("Capital of France?")
    sent = len(router.chat_requests)
    with pytest.raises(TypeError, match="judge must be"):
        chat.review(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"tools= is not an option of chat\.review"):
        chat.review(J, tools=[])
    with pytest.raises(TypeError, match="raw= is not an option"):
        chat.review(J, raw=True)
    with pytest.raises(TypeError, match="blind must be"):
        chat.review(J, blind="yes")  # type: ignore[arg-type]
    with pytest.raises(irouter.UnknownModelError):
        chat.review("nobody/no-such-model", check_capabilities=True)
    with pytest.raises(ValueError, match="appear once"):
        chat.review([J, J])
    assert len(router.chat_requests) == sent


def test_review_refuses_a_model_waiting_for_tool_results(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    schema = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    router.queue(Text(tool_calls=[ToolCall("lookup", {}, id="c1")]), model=A)
    router.queue("Paris.", model=B)
    chat = Chat([A, B], **connect)
    chat("Capital of France?", tools=[schema])
    with pytest.raises(ValueError, match=r"waits for the results of tool calls \(c1\)"):
        chat.review(J)


def test_a_model_whose_turn_failed_is_left_out(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    router.queue("Lima.", model=A)
    router.queue(Error(400, "bad"), model=B)
    with pytest.raises(irouter.MultiModelError):
        chat("Capital of Peru?")
    router.queue(verdict(9), model=J)
    review = chat.review(J)
    assert review.answers == {A: "Lima."}
    assert review.question == "Capital of Peru?"
    assert [r.model for r in review.ranking] == [A]


def test_review_of_a_tool_turn_judges_its_final_answer(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def weather(city: str) -> str:
        """The weather."""
        return "sunny"

    router.queue(Text(tool_calls=[ToolCall("weather", {"city": "Paris"})]), "It is sunny in Paris.", model=A)
    router.queue("No idea.", model=B)
    chat = Chat([A, B], **connect)
    chat("Weather in Paris?", tools=[weather])
    router.queue(verdict(5, 5), verdict(5, 5), model=J)
    review = chat.review(J)
    assert review.answers == {A: "It is sunny in Paris.", B: "No idea."}
    shown = sorted(shown_answers(body) for body in judge_bodies(router))
    assert shown == [["It is sunny in Paris.", "No idea."], ["No idea.", "It is sunny in Paris."]]


def test_async_review_and_synthesize(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    async def main() -> tuple[Review, str]:
        router.queue(ANSWERS[A], model=A)
        router.queue(ANSWERS[B], model=B)
        chat: AsyncChat[Any] = AsyncChat([A, B], **connect)
        await chat("Capital of France?")
        judged_by(router, J, {A: 3, B: 8})
        router.queue(Error(400, "no"), Error(400, "no"), model=K)
        review = await chat.review([J, K])
        router.queue("Paris.", model=K)
        return review, await chat.synthesize(K)

    review, text = asyncio.run(main())
    assert review.scores == {B: 8.0, A: 3.0}
    assert len(review.errors) == 2
    assert text == "Paris."
    for body in judge_bodies(router):
        assert "gpt-4o-mini" not in json.dumps(body["messages"])


def test_async_review_cancelled_keeps_no_history_change(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    async def main() -> AsyncChat[Any]:
        chat: AsyncChat[Any] = AsyncChat([A, B], **connect)
        await chat("Capital of France?")
        router.queue(Text(verdict(5, 5), delay=5), Text(verdict(5, 5), delay=5), model=J)
        task = asyncio.ensure_future(chat.review(J))
        while len(judge_bodies(router)) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return chat

    chat = asyncio.run(main())
    assert [len(h) for h in chat.history.values()] == [3, 3]


# --------------------------------------------------------------------------------------------- synthesize


def test_synthesize_sees_every_answer_and_changes_no_history(router: OpenRouterDouble) -> None:
    chat = asked(router)
    before = json.loads(json.dumps(chat.history))
    router.queue("Paris is the capital of France.", model=K)
    text = chat.synthesize(K, instructions="One short sentence.", temperature=0)
    assert text == "Paris is the capital of France."
    body = judge_bodies(router, K)[0]
    user = body["messages"][-1]["content"]
    for model in (A, B, C):
        assert ANSWERS[model] in user  # every answer, as written
    assert "One short sentence." in user
    assert body["temperature"] == 0
    assert "model=" not in user
    assert chat.history == before
    entry = chat.ledger[-1]
    assert (entry.model, entry.purpose) == (K, "synthesize")
    assert chat.cost[K] == pytest.approx(entry.cost)
    chat.adopt(text=text)
    assert {h[-1]["content"] for h in chat.history.values()} == {"Paris is the capital of France."}


def test_synthesize_errors_raise(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    router.queue(Error(400, "nope"), model=K)
    with pytest.raises(irouter.BadRequestError):
        chat.synthesize(K)
    with pytest.raises(TypeError, match=r"stream= is not an option of chat\.synthesize"):
        chat.synthesize(K, stream=True)


# --------------------------------------------------------------------------------------------- adopt


def test_adopt_a_models_answer_and_go_on(router: OpenRouterDouble) -> None:
    chat = asked(router)
    chat.adopt(B)
    for model in (A, B, C):
        assert chat.history[model][-2:] == [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": ANSWERS[B]},
        ]
    chat("And of Spain?")
    for body in router.chat_requests[-3:]:
        assert body["messages"][-2] == {"role": "assistant", "content": ANSWERS[B]}


def test_adopt_after_a_tool_turn_keeps_the_final_text_only(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    def weather(city: str) -> str:
        """The weather."""
        return "sunny"

    router.queue(Text(tool_calls=[ToolCall("weather", {"city": "Paris"})]), "Sunny in Paris.", model=A)
    router.queue(Text(tool_calls=[ToolCall("weather", {"city": "Paris"})]), "Sunny.", model=B)
    chat = Chat([A, B], **connect)
    chat("Weather in Paris?", tools=[weather])
    assert [m["role"] for m in chat.history[A]] == ["system", "user", "assistant", "tool", "assistant"]
    chat.adopt(A)
    expected = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Sunny in Paris."},
    ]
    assert chat.history == {A: expected, B: expected}


def test_adopt_errors_change_nothing(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat([A, B], **connect)
    with pytest.raises(ValueError, match="no turn"):
        chat.adopt(A)
    chat("Capital of France?")
    router.queue("Lima.", model=A)
    router.queue(Error(400, "bad"), model=B)
    with pytest.raises(irouter.MultiModelError):
        chat("Capital of Peru?")
    before = json.loads(json.dumps(chat.history))
    for call, error, match in [
        (lambda: chat.adopt("x/unknown"), ValueError, "not a model of this chat"),
        (lambda: chat.adopt(A), ValueError, f"last turn of {B} failed"),
        (lambda: chat.adopt(text="agreed"), ValueError, "failed"),
        (lambda: chat.adopt(), TypeError, "Pass the slug"),
        (lambda: chat.adopt(A, text="both"), TypeError, "Pass the slug"),
        (lambda: chat.adopt(text=""), TypeError, "non-empty"),
    ]:
        with pytest.raises(error, match=match):
            call()
        assert chat.history == before


def test_adopt_refuses_while_tool_results_are_awaited(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    schema = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    router.queue(Text(tool_calls=[ToolCall("lookup", {}, id="c1")]), model=A)
    router.queue("Paris.", model=B)
    chat = Chat([A, B], **connect)
    chat("Capital of France?", tools=[schema])
    before = json.loads(json.dumps(chat.history))
    with pytest.raises(ValueError, match="answer_tool_calls"):
        chat.adopt(B)
    assert chat.history == before


def test_async_adopt_refuses_during_a_turn(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    async def main() -> AsyncChat[Any]:
        chat: AsyncChat[Any] = AsyncChat([A, B], **connect)
        await chat("Capital of France?")
        router.queue(Text("slow", delay=0.5), Text("slow", delay=0.5))
        turn = asyncio.ensure_future(chat("Capital of Spain?"))
        while len(router.chat_requests) < 4:
            await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="under way"):
            chat.adopt(A)
        await turn
        chat.adopt(A)
        return chat

    chat = asyncio.run(main())
    assert chat.history[A] == chat.history[B]


# --------------------------------------------------------------------------------------------- adopt, property


def turn_messages(draw: Any, model: int, turn: int) -> list[dict[str, Any]]:
    """One finished turn of a model: the user message, maybe tool steps, a final answer."""
    out: list[dict[str, Any]] = [{"role": "user", "content": f"question {turn}"}]
    for step in range(draw(st.integers(0, 2))):
        ids = [f"m{model}t{turn}s{step}c{i}" for i in range(draw(st.integers(1, 2)))]
        calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]
        out.append({"role": "assistant", "content": draw(st.sampled_from(["", "thinking"])), "tool_calls": calls})
        out += [{"role": "tool", "tool_call_id": i, "content": "result"} for i in ids]
    if draw(st.booleans()) and len(out) > 1:  # max_steps ran out: irouter's own summary request
        out.append({"role": "user", "content": irouter._engine.FINAL_PROMPT})
    extra = {"reasoning": "hmm"} if draw(st.booleans()) else {}
    out.append({"role": "assistant", "content": f"answer of {model} to {turn}", **extra})
    return out


@st.composite
def histories(draw: Any) -> tuple[dict[str, list[dict[str, Any]]], int]:
    count = draw(st.integers(1, 4))
    turns = draw(st.integers(1, 3))
    system = draw(st.booleans())
    out = {}
    for m in range(count):
        history = [{"role": "system", "content": "sys"}] if system else []
        for t in range(turns):
            history += turn_messages(draw, m, t)
        out[f"m/{m}"] = history
    return out, draw(st.integers(0, count - 1))


@settings(max_examples=60, deadline=None)
@given(histories(), st.booleans())
def test_adopt_leaves_histories_well_formed_and_equal_from_the_adopted_point(
    case: tuple[dict[str, list[dict[str, Any]]], int], by_text: bool
) -> None:
    given_histories, chosen = case
    models = list(given_histories)
    chat: Chat[Any] = Chat(models if len(models) > 1 else models[0], base_url="http://127.0.0.1:9/api/v1", api_key="k")
    chat.set_history(given_histories)
    slug = models[chosen]
    final = f"answer of {chosen} to {chat.turns - 1}"
    if by_text:
        chat.adopt(text="agreed")
    else:
        chat.adopt(slug)
    after = chat.history if len(models) > 1 else {slug: chat.history}
    ends = set()
    for model in models:
        history = after[model]
        check_history(history)  # well-formed: every tool call answered, roles and contents valid
        assert chat.pending_tool_calls in ([], {m: [] for m in models})
        last_user = max(i for i, m in enumerate(given_histories[model]) if m["content"] == f"question {chat.turns - 1}")
        assert history[: last_user + 1] == given_histories[model][: last_user + 1]  # earlier turns untouched
        assert history[last_user + 1 :] == [{"role": "assistant", "content": "agreed" if by_text else final}]
        ends.add(json.dumps(history[last_user:]))
    assert len(ends) == 1  # equal from the last user message on


def test_labels_go_on_after_z() -> None:
    assert labels(3) == ["A", "B", "C"]
    assert labels(28)[24:] == ["Y", "Z", "AA", "AB"]
    assert len(set(labels(800))) == 800


def test_a_saved_chat_keeps_its_judges_costs(router: OpenRouterDouble, tmp_path: Any) -> None:
    chat = asked(router, (A, B))
    judged_by(router, J, {A: 6, B: 4})
    chat.review(J)
    loaded: Chat[Any] = Chat.load(chat.save(tmp_path / "chat.json"), api_key=router.api_key)
    assert [e.purpose for e in loaded.ledger] == [e.purpose for e in chat.ledger] == [None, None, "review", "review"]
    assert loaded.cost == chat.cost
    assert list(loaded.cost) == [A, B, J]


def test_a_review_shows_as_a_ranked_table_in_notebooks(router: OpenRouterDouble) -> None:
    chat = asked(router, (A, B))
    judged_by(router, J, {A: 7, B: 3})
    reply = per_pass((A, B), Error(400, "Provider returned error"), "this is not JSON")
    router.queue(reply, reply, model=K)
    review = chat.review([J, K])
    page = review._repr_html_()
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    assert [A in rows[0], B in rows[1]] == [True, True]  # best first
    assert "7.00" in rows[0]
    assert "3.00" in rows[1]
    assert "Paris. (I am GPT 4o mini, by OpenAI.)" in rows[0]  # the answer judged, unmasked
    assert "failed verdicts" in page
    assert "BadRequestError" in page
    evil = Review(
        ranking=[irouter.Ranked(model="<x>", rank=1, score=5.0, reason="<script>alert(1)</script>")],
        verdicts=[], judges=["<j>"], question="<q>", answers={"<x>": "<b>hi</b>"}, criteria="",
    )  # fmt: skip
    assert "<script>" not in evil._repr_html_()
    assert "&lt;script&gt;" in evil._repr_html_()
    assert "<b>hi</b>" not in evil._repr_html_()
