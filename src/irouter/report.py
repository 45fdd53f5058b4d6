"""Comparisons you can look at: a multi-model turn, a review of it, or a grid, as one HTML page with an SVG chart.

>>> chat = Chat(["x/a", "x/b@deepinfra", "x/b@together"])       # doctest: +SKIP
>>> chat("Explain CRDTs in two sentences.")                    # doctest: +SKIP
>>> chat.report()                  # in a notebook: the answers side by side and cost against latency
>>> chat.report(review=chat.review(judge="y/judge")).save("report.html")   # doctest: +SKIP

The page is self-contained (inline CSS and SVG, no script, no external URL), so it opens offline and can be mailed.
Answers are shown as escaped text (Markdown stays readable as written). A review is anything with a ``ranking`` of
items that have ``model``, ``rank``, ``score`` (0-10) and ``reason`` (irouter's `Review`); with one the columns go
best first and the chart colours each point by its score.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = ["Report", "ReportEntry"]


@dataclass(frozen=True)
class ReportEntry:
    """One model's (or provider's) column: its answer and what it took. ``cost`` is in dollars (reported, else
    estimated from catalog prices; ``None`` when neither is known), ``latency`` in seconds; both are per answer
    (for a grid: the mean over its cells). ``rank``/``score``/``reason`` come from a review."""

    model: str
    answer: str | None = None
    error: str | None = None
    provider: str | None = None
    cost: float | None = None
    latency: float | None = None
    tokens: int = 0
    rank: int | None = None
    score: float | None = None
    reason: str | None = None
    answers: dict[str, str | None] = field(default_factory=dict)
    """A grid's answers by prompt id (empty for a chat)."""


@dataclass(frozen=True)
class Report:
    """A comparison of several models' answers. Make one with `Report.of` (or ``chat.report()``); show it in a
    notebook (``_repr_html_``), print it (a text table), or `save` it as a page."""

    title: str
    question: str | None
    entries: tuple[ReportEntry, ...]
    prompts: tuple[tuple[str, str], ...] = ()
    """A grid's prompts, (id, text) in order (the text is the id when the prompts were not given)."""
    reviewed: bool = False

    # ------------------------------------------------------------------------------------------ making one
    @classmethod
    def of(cls, source: Any, review: Any = None, *, prompts: Sequence[Any] | None = None) -> Report:
        """A report of ``source``: a `Chat`/`AsyncChat` (its last turn) or a grid's `GridResults` (every cell).

        ``review`` ranks the models (see the module docs); ``prompts`` (for a grid: the list given to the grid)
        puts each prompt's text beside its id."""
        if hasattr(source, "ledger") and hasattr(source, "history"):
            report = _of_chat(source)
        elif hasattr(source, "grid_id") and isinstance(source, Iterable):
            report = _of_grid(source, prompts)
        else:
            raise TypeError(
                f"Report.of takes a Chat, an AsyncChat or a grid's GridResults, got {type(source).__name__}"
            )
        return report.with_review(review) if review is not None else report

    def with_review(self, review: Any) -> Report:
        """This report with ``review``'s ranks, scores and reasons, best first."""
        ranking = getattr(review, "ranking", None)
        if not isinstance(ranking, Iterable):
            raise TypeError(f"review must have a 'ranking' (irouter's Review), got {type(review).__name__}")
        by_model = {str(r.model): r for r in ranking}
        unknown = sorted(set(by_model) - {e.model for e in self.entries})
        if unknown:
            raise ValueError(f"the review ranks {unknown}, which this report does not have")
        entries = [
            replace(e, rank=int(r.rank), score=float(r.score), reason=str(r.reason or ""))
            if (r := by_model.get(e.model)) is not None
            else e
            for e in self.entries
        ]
        entries.sort(key=lambda e: (e.rank is None, e.rank or 0))
        return replace(self, entries=tuple(entries), reviewed=True)

    # ------------------------------------------------------------------------------------------ showing it
    def __str__(self) -> str:
        rows = [("model", "cost", "latency", "score", "answer")]
        for e in self.entries:
            text = e.error or e.answer or (f"{len(e.answers)} answers" if e.answers else "")
            first = text.strip().splitlines()[0] if text.strip() else ""
            rows.append(
                (
                    (f"#{e.rank} " if e.rank is not None else "") + e.model,
                    _money(e.cost),
                    _seconds(e.latency),
                    "-" if e.score is None else f"{e.score:.1f}",
                    first[:60] + ("..." if len(first) > 60 else ""),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)), r[4]]).rstrip() for r in rows]
        return "\n".join([self.title, *lines])

    def __repr__(self) -> str:
        return f"Report({self.title!r}, models={[e.model for e in self.entries]})"

    def _repr_html_(self) -> str:
        """The report as an HTML fragment (inline CSS and SVG), as notebooks show it."""
        parts = [f"<div class='irouter-report'>{_STYLE}<h2>{_esc(self.title)}</h2>"]
        if self.question:
            parts.append(f"<div class='question'><b>Question</b><div class='text'>{_esc(self.question)}</div></div>")
        parts.append(chart_svg(self.entries, self.reviewed))
        parts.append(self._grid_html() if self.prompts else self._answers_html())
        parts.append("</div>")
        return "".join(parts)

    def html(self) -> str:
        """The whole page: `_repr_html_` inside a self-contained HTML document."""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(self.title)}</title></head><body>{self._repr_html_()}</body></html>"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the page (`html`) to ``path`` (UTF-8); returns the path."""
        target = Path(path)
        target.write_text(self.html(), encoding="utf-8")
        return target

    def _answers_html(self) -> str:
        cards = []
        for number, e in enumerate(self.entries, 1):
            facts = [f"{_money(e.cost)}", _seconds(e.latency), f"{e.tokens:,} tokens"]
            if e.provider:
                facts.insert(0, _esc(e.provider))
            fill = _fill(e, self.reviewed)
            head = f"<span class='num' style='background:{fill}'>{number}</span> "
            head += f"<span class='model'>{_esc(e.model)}</span>"
            if e.rank is not None:
                head += f" <span class='rank' style='color:{fill}'>#{e.rank} · {e.score:.1f}/10</span>"
            body = (
                f"<div class='error'>{_esc(e.error)}</div>"
                if e.error
                else f"<div class='text'>{_esc(e.answer or '')}</div>"
            )
            reason = f"<div class='reason'>{_esc(e.reason)}</div>" if e.reason else ""
            cards.append(
                f"<div class='answer' data-model='{_esc(e.model)}'><div class='head'>{head}</div>"
                f"<div class='facts'>{' · '.join(facts)}</div>{reason}{body}</div>"
            )
        return f"<div class='answers'>{''.join(cards)}</div>"

    def _grid_html(self) -> str:
        head = "".join(
            f"<th data-model='{_esc(e.model)}'><span class='num'>{n}</span> {_esc(e.model)}<div class='facts'>"
            f"{_money(e.cost)} · {_seconds(e.latency)} per answer</div></th>"
            for n, e in enumerate(self.entries, 1)
        )
        rows = []
        for pid, text in self.prompts:
            cells = "".join(
                f"<td class='text' data-model='{_esc(e.model)}'>{_esc(e.answers.get(pid) or '')}</td>"
                for e in self.entries
            )
            rows.append(f"<tr><th class='text' scope='row'>{_esc(text)}</th>{cells}</tr>")
        return (
            f"<table class='grid'><thead><tr><th>prompt</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )


# --------------------------------------------------------------------------------------------- sources


def _of_chat(chat: Any) -> Report:
    models = list(chat.models)
    history = chat.history if isinstance(chat.history, dict) else {models[0]: chat.history}
    ledger = list(chat.ledger)
    question = None
    entries = []
    from .review import asked as questions

    dropped = getattr(chat, "dropped", None) or {}  # turns that made room (on_overflow) were asked too
    dropped = dropped if isinstance(dropped, dict) else {models[0]: dropped}
    turns = {m: questions(history.get(m) or []) + questions(dropped.get(m) or []) for m in models}
    for model in models:
        messages = history.get(model) or []
        asked = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if asked is None or turns[model] < max(turns.values()):  # failed in the last turn: history kept as it was
            entries.append(ReportEntry(model, error="no answer in the last turn" if asked else "no turn yet"))
            continue
        if question is None:
            question = _text(messages[asked].get("content"))
        answer = next((m for m in reversed(messages[asked:]) if m.get("role") == "assistant"), None)
        turn = _last_turn([e for e in ledger if (e.fallback_for or e.model) == model and e.purpose is None])
        costs = [e.cost if e.cost is not None else e.estimated_cost for e in turn]
        entries.append(
            ReportEntry(
                model,
                answer=_text(answer.get("content")) if answer else None,
                error=None if answer else "no answer in the last turn",
                provider=turn[-1].provider if turn else None,
                cost=sum(c for c in costs if c is not None) if turn and None not in costs else None,
                latency=sum(e.latency for e in turn) if turn else None,
                tokens=sum(e.total_tokens for e in turn),
            )
        )
    title = f"{len(models)} model{'s' if len(models) != 1 else ''} compared"
    return Report(title, question, tuple(entries))


def _last_turn(entries: list[Any]) -> list[Any]:
    """The ledger entries of a model's last turn: from its last first-step request on."""
    starts = [i for i, e in enumerate(entries) if e.step == 1]
    return entries[starts[-1] :] if starts else entries


def _of_grid(results: Iterable[Any], prompts: Sequence[Any] | None) -> Report:
    cells = list(results)
    order = list(dict.fromkeys(c.model for c in cells))
    texts = _prompt_texts(prompts)
    ids = list(dict.fromkeys(str(c.prompt_id) for c in cells))
    entries = []
    for model in order:
        mine = [c for c in cells if c.model == model]
        spent = [c.cost if c.cost is not None else c.estimated_cost for c in mine if c.ok]
        waited = [c.latency for c in mine if c.ok and c.latency is not None]
        answers = {str(c.prompt_id): (c.text if c.ok else f"error: {c.error.type}: {c.error.message}") for c in mine}
        providers = sorted({c.provider for c in mine if c.provider})
        entries.append(
            ReportEntry(
                model,
                provider=", ".join(providers) or None,
                cost=sum(spent) / len(spent) if spent and None not in spent else None,
                latency=sum(waited) / len(waited) if waited else None,
                tokens=sum(c.total_tokens for c in mine),
                answers=answers,
                error=None if any(c.ok for c in mine) else "every cell failed",
            )
        )
    title = f"{len(ids)} prompt{'s' if len(ids) != 1 else ''} x {len(order)} models"
    return Report(title, None, tuple(entries), tuple((i, texts.get(i, i)) for i in ids))


def _prompt_texts(prompts: Sequence[Any] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for index, item in enumerate(prompts or ()):
        if isinstance(item, Mapping) and "prompt" in item:
            found[str(item.get("id", index))] = _text(item["prompt"])
        else:
            found[str(index)] = _text(item)
    return found


def _text(content: Any) -> str:
    from ._persist import _content_text

    return content if isinstance(content, str) else _content_text(content)


# --------------------------------------------------------------------------------------------- the chart

WIDTH, HEIGHT = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 84, 24, 20, 52


def chart_svg(entries: Sequence[ReportEntry], reviewed: bool = False) -> str:
    """Cost (up) against latency (right), one numbered point per model (numbers as in the answers); coloured by
    score when ``reviewed``. Models without a known cost or latency are listed under the chart instead."""
    known = [(n, e) for n, e in enumerate(entries, 1) if e.cost is not None and e.latency is not None]
    missing = [e.model for e in entries if e.cost is None or e.latency is None]
    headroom = 1.08  # no point on the frame's edge
    x_ticks = _ticks(headroom * max((e.latency or 0.0) for _, e in known) if known else 1.0)
    y_ticks = _ticks(headroom * max((e.cost or 0.0) for _, e in known) if known else 1.0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + plot_w * v / x_ticks[-1]

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / y_ticks[-1])

    out = [
        f"<svg class='chart' viewBox='0 0 {WIDTH} {HEIGHT}' width='{WIDTH}' height='{HEIGHT}' role='img' "
        "aria-label='cost against latency, one point per model'>"
    ]
    for t in x_ticks:
        out.append(f"<line class='grid' x1='{x(t):.1f}' y1='{TOP}' x2='{x(t):.1f}' y2='{TOP + plot_h}'/>")
        out.append(f"<text class='tick' x='{x(t):.1f}' y='{TOP + plot_h + 18}' text-anchor='middle'>{t:g} s</text>")
    for t in y_ticks:
        out.append(f"<line class='grid' x1='{LEFT}' y1='{y(t):.1f}' x2='{LEFT + plot_w}' y2='{y(t):.1f}'/>")
        out.append(f"<text class='tick' x='{LEFT - 8}' y='{y(t) + 4:.1f}' text-anchor='end'>{_money(t)}</text>")
    out.append(
        f"<text class='axis' x='{LEFT + plot_w / 2}' y='{HEIGHT - 10}' text-anchor='middle'>latency per answer</text>"
        f"<text class='axis' transform='translate(16 {TOP + plot_h / 2}) rotate(-90)' text-anchor='middle'>"
        "cost per answer</text>"
    )
    for n, e in known:
        cost, latency = float(e.cost or 0.0), float(e.latency or 0.0)
        fill = _fill(e, reviewed)
        score = "" if e.score is None else f" · score {e.score:.1f}"
        scored = "" if e.score is None else f" data-score='{e.score!r}'"
        out.append(
            f"<g class='point' data-model='{_esc(e.model)}' data-cost='{cost!r}' data-latency='{latency!r}'{scored}>"
            f"<title>{_esc(e.model)}: {_money(cost)}, {_seconds(latency)}{score}</title>"
            f"<circle cx='{x(latency):.1f}' cy='{y(cost):.1f}' r='11' fill='{fill}'/>"
            f"<text class='label' x='{x(latency):.1f}' y='{y(cost) + 4:.1f}' text-anchor='middle'>{n}</text></g>"
        )
    out.append("</svg>")
    legend = "".join(
        f"<li><span class='num' style='background:{_fill(e, reviewed)}'>{n}</span> {_esc(e.model)}</li>"
        for n, e in known
    )
    note = (
        f"<p class='missing'>Not charted (cost or latency unknown): {_esc(', '.join(missing))}</p>" if missing else ""
    )
    scale = "<p class='scale'>colour: review score, red 0 → green 10</p>" if reviewed else ""
    caption = f"<figcaption><ol class='legend'>{legend}</ol>{scale}{note}</figcaption>"
    return f"<figure class='plot'>{''.join(out)}{caption}</figure>"


def _ticks(top: float) -> list[float]:
    """0 and round steps up to at least ``top`` (at most about 5 steps)."""
    if top <= 0 or not math.isfinite(top):
        top = 1.0
    raw = top / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = math.ceil(top / step - 1e-9)
    return [float(f"{i * step:.12g}") for i in range(count + 1)] if count else [0.0, step]


def _fill(entry: ReportEntry, reviewed: bool) -> str:
    return _score_colour(entry.score) if reviewed and entry.score is not None else "#3b6fd4"


def _score_colour(score: float | None) -> str:
    """Red (0) through amber to green (10)."""
    share = min(max((score or 0.0) / 10, 0.0), 1.0)
    return f"hsl({share * 120:.0f}, 62%, 42%)"


def _money(value: float | None) -> str:
    if value is None:
        return "cost ?"
    if value == 0:
        return "$0"
    return f"${value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"${value:,.2f}"


def _seconds(value: float | None) -> str:
    return "? s" if value is None else f"{value:.2f} s"


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


_STYLE = """<style>
.irouter-report{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;max-width:1400px}
.irouter-report h2{font-size:1.15rem;margin:.2rem 0 .6rem}
.irouter-report .question{background:#f3f5f9;border-radius:6px;padding:.6rem .8rem;margin-bottom:.8rem}
.irouter-report .text{white-space:pre-wrap;overflow-wrap:anywhere;text-align:left}
.irouter-report .plot{margin:0 0 1rem;display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
.irouter-report svg.chart{background:#fff;border:1px solid #dde2ea;border-radius:6px;max-width:100%;height:auto}
.irouter-report svg .grid{stroke:#e7ebf1;stroke-width:1}
.irouter-report svg .tick{font-size:11px;fill:#5b6477}
.irouter-report svg .axis{font-size:12px;fill:#1d2330}
.irouter-report svg .label{font-size:11px;font-weight:700;fill:#fff;pointer-events:none}
.irouter-report svg circle{stroke:#fff;stroke-width:2;opacity:.92}
.irouter-report figcaption{font-size:.85rem}
.irouter-report ol.legend{list-style:none;padding:0;margin:0}
.irouter-report ol.legend li{margin:.25rem 0}
.irouter-report .num{display:inline-block;min-width:1.4em;text-align:center;border-radius:1em;background:#3b6fd4;
 color:#fff;font-size:.75rem;font-weight:700;padding:.1em .2em}
.irouter-report .answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:.8rem}
.irouter-report .answer{border:1px solid #dde2ea;border-radius:6px;padding:.6rem .8rem;background:#fff}
.irouter-report .head{font-weight:600;overflow-wrap:anywhere}
.irouter-report .rank{color:#0b7a3e;font-weight:700;white-space:nowrap}
.irouter-report .facts{color:#5b6477;font-size:.8rem;margin:.2rem 0 .4rem;font-weight:400}
.irouter-report .reason{font-style:italic;color:#3d4656;font-size:.85rem;margin-bottom:.4rem}
.irouter-report .error{color:#b42318;white-space:pre-wrap}
.irouter-report .missing,.irouter-report .scale{color:#5b6477;font-size:.8rem}
.irouter-report table.grid{border-collapse:collapse;width:100%}
.irouter-report table.grid th,.irouter-report table.grid td{border:1px solid #dde2ea;padding:.4rem .6rem;
 vertical-align:top;text-align:left}
.irouter-report table.grid thead th{background:#f3f5f9}
</style>"""
