"""Reports: a multi-model turn, a review and a grid as HTML (answers side by side, an SVG chart), checked in its
structure here; tests/test_report_browser.py renders it in Chromium."""

from __future__ import annotations

import asyncio
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from irouter import AsyncChat, Call, Chat, Report
from irouter.report import _ticks

from .report_helpers import REVIEW, SLUGS, Elements, Ranked, ReviewLike, answer_for, double


def points(page: str) -> dict[str, dict[str, float]]:
    """The chart's points by model: cost, latency (from data attributes) and the circle's x and y."""
    found: dict[str, dict[str, float]] = {}
    model = None
    for tag, attrs in Elements(page).tags:
        if tag == "g" and "point" in (attrs.get("class") or ""):
            model = str(attrs["data-model"])
            found[model] = {"cost": float(str(attrs["data-cost"])), "latency": float(str(attrs["data-latency"]))}
        elif tag == "circle" and model is not None:
            found[model].update(x=float(str(attrs["cx"])), y=float(str(attrs["cy"])))
            model = None
    return found


def test_a_turn_renders_answers_side_by_side_and_cost_against_latency(tmp_path: Path) -> None:
    with double() as router:
        chat = Chat(SLUGS, base_url=router.base_url, api_key=router.api_key)
        answers = chat("Explain CRDTs.")
    report = chat.report()
    by_model = {e.model: e for e in report.entries}
    assert [e.model for e in report.entries] == SLUGS
    assert report.question == "Explain CRDTs."
    for entry in chat.ledger:
        assert by_model[entry.model].cost == entry.cost
        assert by_model[entry.model].latency == entry.latency
        assert by_model[entry.model].provider == entry.provider
        assert by_model[entry.model].answer == answers[entry.model]
    page = report._repr_html_()
    parsed = Elements(page)
    cards = parsed.having("div", "answer")
    assert [c["data-model"] for c in cards] == SLUGS
    text = "".join(parsed.texts)
    for provider in ("deepinfra", "together", "fireworks", "openai"):
        assert answer_for(provider) in text  # the whole answer, as text
    assert "<b>CRDTs</b>" not in page  # escaped, not markup
    assert "&lt;b&gt;CRDTs&lt;/b&gt; &amp; &quot;merges&quot;" in page
    chart = points(page)
    assert set(chart) == set(SLUGS)
    for model, point in chart.items():
        assert point["cost"] == by_model[model].cost
        assert point["latency"] == by_model[model].latency
    by_latency = sorted(chart, key=lambda m: chart[m]["latency"])
    assert sorted(chart, key=lambda m: chart[m]["x"]) == by_latency
    assert sorted(chart, key=lambda m: -chart[m]["y"]) == sorted(chart, key=lambda m: chart[m]["cost"])
    saved = report.save(tmp_path / "report.html")
    whole = saved.read_text(encoding="utf-8")
    assert whole.startswith("<!DOCTYPE html>")
    assert page in whole
    assert not re.search(r"(src|href)\s*=|<script|<link|@import|url\(|https?:", whole, re.IGNORECASE)


def test_a_review_ranks_the_columns_and_colours_the_points() -> None:
    with double() as router:
        chat = Chat(SLUGS, base_url=router.base_url, api_key=router.api_key)
        chat("Explain CRDTs.")
    report = chat.report(review=REVIEW)
    assert [e.model for e in report.entries] == [r.model for r in REVIEW.ranking]
    expected = [(r.rank, r.score, r.reason) for r in REVIEW.ranking]
    assert [(e.rank, e.score, e.reason) for e in report.entries] == expected
    page = report._repr_html_()
    parsed = Elements(page)
    assert [c["data-model"] for c in parsed.having("div", "answer")] == [r.model for r in REVIEW.ranking]
    scores = {str(a["data-model"]): float(str(a["data-score"])) for a in parsed.having("g", "point")}
    assert scores == {r.model: r.score for r in REVIEW.ranking}
    assert "wrong &lt;here&gt;" in page
    fills = [a["fill"] for t, a in parsed.tags if t == "circle"]
    assert len(set(fills)) == 4  # one colour per score
    lines = str(report).splitlines()
    assert lines[1].split()[:2] == ["model", "cost"]
    assert lines[2].startswith(f"#1 {SLUGS[1]}")
    with pytest.raises(ValueError, match="no/such"):
        report.with_review(ReviewLike([Ranked("no/such", 1, 1.0, "")]))
    with pytest.raises(TypeError, match="ranking"):
        chat.report(review="best: A")


def test_a_grid_renders_prompts_by_models(tmp_path: Path) -> None:
    prompts = [{"id": "crdt", "prompt": "Explain CRDTs."}, {"id": "raft", "prompt": "Explain <Raft>."}]
    with double() as router:
        grid = Call(SLUGS[:3], base_url=router.base_url, api_key=router.api_key).grid(prompts)
        list(grid.run())
        results = grid.results()
        report = Report.of(results, prompts=prompts)
        cells = list(results)
    assert report.prompts == (("crdt", "Explain CRDTs."), ("raft", "Explain <Raft>."))
    page = report._repr_html_()
    parsed = Elements(page)
    assert [a["data-model"] for t, a in parsed.tags if t == "th" and a.get("data-model")] == SLUGS[:3]
    assert len([a for t, a in parsed.tags if t == "td"]) == 6
    assert "Explain &lt;Raft&gt;." in page
    chart = points(page)
    for model in SLUGS[:3]:
        mine = [c for c in cells if c.model == model]
        assert chart[model]["cost"] == pytest.approx(sum(c.cost or 0 for c in mine) / 2)
        assert chart[model]["latency"] == pytest.approx(sum(c.latency or 0 for c in mine) / 2)
    assert Report.of(results).prompts == (("crdt", "crdt"), ("raft", "raft"))  # ids only without the prompts


def test_one_model_async_and_no_turn_yet() -> None:
    with double() as router:
        kwargs = {"base_url": router.base_url, "api_key": router.api_key}
        fresh = Chat(SLUGS[:2], **kwargs).report()
        assert [e.error for e in fresh.entries] == ["no turn yet", "no turn yet"]
        assert points(fresh._repr_html_()) == {}
        assert "Not charted" in fresh._repr_html_()

        async def turn() -> Report:
            chat = AsyncChat(SLUGS[1], **kwargs)
            await chat("Hi")
            await chat("Again")
            return chat.report()

        report = asyncio.run(turn())
    (entry,) = report.entries
    assert report.question == "Again"
    assert entry.answer == answer_for("together")
    assert entry.cost == 0.00035  # the last turn only, not both
    with pytest.raises(TypeError, match=r"Report\.of takes"):
        Report.of([1, 2])


@given(st.floats(min_value=1e-9, max_value=1e6, allow_nan=False))
def test_chart_ticks_cover_the_data_in_round_steps(top: float) -> None:
    ticks = _ticks(top)
    assert ticks[0] == 0
    assert ticks[-1] >= top * (1 - 1e-9)
    assert 2 <= len(ticks) <= 7
    steps = {round(b - a, 12) for a, b in itertools.pairwise(ticks)}
    assert len({float(f"{s:.6g}") for s in steps}) == 1


def test_a_model_that_failed_the_last_turn_shows_no_older_answer() -> None:
    from irouter import MultiModelError
    from irouter.testing import Error

    with double() as router:
        chat = Chat(SLUGS[:2], base_url=router.base_url, api_key=router.api_key)
        chat("First")
        router.default = lambda body: (
            Error(400, "Provider returned error") if "deepinfra" in str(body.get("provider")) else "Second answer"
        )
        with pytest.raises(MultiModelError):
            chat("Second")
    report = chat.report()
    assert report.question == "Second"
    failed, answered = report.entries
    assert (failed.model, failed.answer, failed.error) == (SLUGS[0], None, "no answer in the last turn")
    assert (answered.answer, answered.error) == ("Second answer", None)
    assert set(points(report._repr_html_())) == {SLUGS[1]}
