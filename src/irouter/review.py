"""Compare, judge, adopt: what a chat of several models can do with its last turn.

- `Chat.review`: one judge model, or a panel of them, scores every model's last answer from 0 to 10 with a short
  reason. The judge sees the question and the answers labelled A, B, C... With ``blind`` (the default) no model
  name is shown, and each competitor's slug (and its name after the ``/``) is masked as ``[model]`` where an answer
  mentions it. With ``swap`` (the default) each judge judges a second time with the answers in the reverse order,
  to cancel position bias.
- `Chat.synthesize`: one model (the "chairman") writes a single answer from all of them.
- `Chat.adopt`: one answer (a model's, or a given text) becomes every model's last answer, so all go on from the
  same point.

**How verdicts combine.** Every judge's every pass that succeeded is one `Verdict` with a score per model. A model's
`Ranked.score` is the mean of its scores over all those verdicts (judges and passes weigh the same); models are
ranked by that mean, best first, and equal means share a rank (1, 1, 3). (A single answer is judged once: there is
no order to swap.) A verdict that failed (an HTTP error, a
reply that is not the JSON asked for, a score outside 0..10, the budget) is kept in `Review.verdicts` with its
``error`` and counts for nothing; the others still rank the models. When no verdict succeeded, ``ranking`` is empty.

**What "the last turn" is.** A model's last turn starts at its last user message (irouter's own summary request after
``max_steps`` does not count); its answer is the text of the turn's last assistant message, so tool steps in between
are not part of it. A model whose last turn failed has one turn less than the others (turns dropped to make room,
``on_overflow``, still count): `review` and `synthesize` leave it out, `adopt` refuses. A model still waiting for
tool results has no answer yet: all three refuse.

**Costs.** The judges' and the chairman's requests are sent through the chat's endpoint with its key, retries,
``timeout`` and ``extra_headers`` (not its other defaults, such as ``tools`` or ``temperature``: pass request
options to `review`/`synthesize` itself), count against its budgets (``max_cost``), stop on Ctrl-C like a turn,
and are recorded in `Chat.ledger` under the judge's slug with ``purpose="review"`` (``"synthesize"``). They never
join any model's history. In `Chat.cost` (and `usage`) they show under the judge's slug: a judge that is not one of
the chat's models gets a line of its own, a judge that is one adds to that model's line.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from ._context import SUMMARY_PREFIX
from ._engine import FINAL_PROMPT
from .errors import IrouterError, StructuredOutputError
from .tools import pending_calls

if TYPE_CHECKING:
    from ._client import Plan
    from ._engine import TurnResult
    from ._ledger import LedgerEntry
    from .chat import _Conversation

MASK = "[model]"
"""What a competitor's name becomes in the answers a blind judge reads."""
DEFAULT_CRITERIA = (
    "correctness first; then how well the answer serves the person who asked: complete, clear and to the point"
)
JUDGE_SYSTEM = (
    "You are an impartial judge of answers to a question. Each answer is labelled with a letter. Score every answer "
    "from 0 (wrong or useless) to 10 (excellent) against the criteria, and give a one-sentence reason for each "
    "score. Judge what the answers say: not their length, not their order, not who may have written them. Reply "
    'with JSON only: an object with one property per label, each {"reason": "...", "score": number}.'
)
SYNTHESIS_SYSTEM = "You write the single best answer to a question, drawing on several candidate answers."
DEFAULT_INSTRUCTIONS = (
    "Write one answer to the question that keeps what is correct and useful in the answers above and leaves out "
    "what is wrong. Reply with the answer itself, addressed to whoever asked; do not mention the candidate answers "
    "or their labels."
)
CARRIED = ("extra_headers", "timeout", "max_retries", "max_retry_wait", "check_capabilities")
"""The chat's defaults its judges' requests use too (how to reach the server); its other defaults are for its
models' turns."""
REFUSED = (
    *("stream", "tools", "tool_choice", "parallel_tool_calls", "response_format"),
    *("max_steps", "before_tool", "after_tool"),
)
"""Options of a turn that a judge's (or chairman's) request cannot take: irouter sets its format, without tools."""


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Ranked:
    """One model's place in a `Review`."""

    model: str
    """The slug as in ``chat.models``."""
    rank: int
    """1 is the best; equal scores share a rank (1, 1, 3)."""
    score: float
    """0..10: the mean of the model's scores over every judge and pass that gave a verdict."""
    reason: str
    """The judges' reasons, distinct ones joined with `` / ``."""

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rank": self.rank, "score": self.score, "reason": self.reason}


@dataclass(frozen=True)
class Verdict:
    """One judge's one pass: the scores it gave, or why it gave none (``error``)."""

    judge: str
    order: tuple[str, ...]
    """The models in the order the judge saw their answers: answer A is ``order[0]``, B ``order[1]``..."""
    swapped: bool
    """The second pass of `Chat.review`'s ``swap``: the order reversed."""
    scores: dict[str, float] = field(default_factory=dict)
    """Per model slug, 0..10 (empty when ``error``)."""
    reasons: dict[str, str] = field(default_factory=dict)
    error: Exception | None = None
    """What went wrong (an irouter error: `APIError`, `StructuredOutputError`, `BudgetExceeded`...)."""
    cost: float | None = None
    """Dollars the server reported for this pass's request (``None``: none reported)."""
    latency: float | None = None
    """Seconds the request took (``None``: none was sent)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        error = None if self.error is None else {"type": type(self.error).__name__, "message": str(self.error)}
        return {
            "judge": self.judge,
            "order": list(self.order),
            "swapped": self.swapped,
            "scores": dict(self.scores),
            "reasons": dict(self.reasons),
            "error": error,
            "cost": self.cost,
            "latency": self.latency,
        }


@dataclass(frozen=True)
class Review:
    """What `Chat.review` returns: the ranking, and every verdict it comes from (see the module docstring for how
    they combine). ``print(review)`` shows a table; ``review.to_dict()`` is JSON-ready."""

    ranking: list[Ranked]
    """Best first; empty when no judge gave a verdict (see ``errors``)."""
    verdicts: list[Verdict]
    """Per judge, then per pass (the swapped pass second), failed ones included."""
    judges: list[str]
    question: str
    """The text of the question the models answered."""
    answers: dict[str, str]
    """The answers judged, per model (as the models wrote them, unmasked); models whose last turn failed are not
    here."""
    criteria: str
    blind: bool = True
    swap: bool = True
    cost: float | None = None
    """Dollars of the judges' requests (``None`` when none reported a cost)."""

    @property
    def errors(self) -> list[Verdict]:
        """The verdicts that failed."""
        return [v for v in self.verdicts if v.error is not None]

    @property
    def best(self) -> str | None:
        """The slug ranked first (the first in the chat's order among equals); ``None`` without a ranking."""
        return self.ranking[0].model if self.ranking else None

    @property
    def scores(self) -> dict[str, float]:
        """``{slug: score}``, best first."""
        return {r.model: r.score for r in self.ranking}

    def to_dict(self) -> dict[str, Any]:
        return {
            "ranking": [r.to_dict() for r in self.ranking],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "judges": list(self.judges),
            "question": self.question,
            "answers": dict(self.answers),
            "criteria": self.criteria,
            "blind": self.blind,
            "swap": self.swap,
            "cost": self.cost,
        }

    def _repr_html_(self) -> str:
        """The ranking as a table in notebooks, each row coloured by its score, with each answer judged; for the
        answers side by side with cost against latency, see ``chat.report(review=review)``."""
        from .report import _esc, _score_colour

        rows = "".join(
            f"<tr><td>{r.rank}</td><td><code>{_esc(r.model)}</code></td>"
            f'<td style="color:{_score_colour(r.score)};font-weight:600">{r.score:.2f}</td>'
            f"<td>{_esc(r.reason)}</td>"
            f'<td style="white-space:pre-wrap;max-width:40em">{_esc(self.answers.get(r.model, ""))}</td></tr>'
            for r in self.ranking
        )
        failed = "".join(
            f"<li>{_esc(v.judge)}{' (swapped)' if v.swapped else ''}: {_esc(type(v.error).__name__)}: {_esc(v.error)}"
            "</li>"
            for v in self.errors
        )
        spent = "cost unknown" if self.cost is None else f"${self.cost:.6f}"
        return (
            f"<div><p><b>Question:</b> {_esc(self.question)}</p>"
            "<table><thead><tr><th>rank</th><th>model</th><th>score</th><th>reason</th><th>answer</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            f"<p>judged by {_esc(', '.join(self.judges))}, {spent}</p>"
            + (f"<p>failed verdicts:</p><ul>{failed}</ul>" if failed else "")
            + "</div>"
        )

    def __str__(self) -> str:
        rows = [("rank", "model", "score", "reason")]
        rows += [(str(r.rank), r.model, f"{r.score:.2f}", r.reason) for r in self.ranking]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)), row[3]]) for row in rows]
        passes = len(self.verdicts) // max(1, len(self.judges))
        spent = "cost unknown" if self.cost is None else f"${self.cost:.6f}"
        lines.append(f"judged by {', '.join(self.judges)} ({passes} pass{'es' if passes != 1 else ''} each), {spent}")
        for v in self.errors:
            where = " (swapped)" if v.swapped else ""
            lines.append(f"failed: {v.judge}{where}: {type(v.error).__name__}: {v.error}")
        return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------------------------- the last turn


def last_user(history: Sequence[Mapping[str, Any]]) -> int | None:
    """The index of the last message the user sent (not irouter's own summary request), or ``None``."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].get("role") == "user" and history[i].get("content") != FINAL_PROMPT:
            return i
    return None


def text_of(content: Any) -> str:
    """A message's text: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


@dataclass
class LastTurn:
    """The models' last turn, as `review`, `synthesize` and `adopt` see it."""

    question: Any
    """The content of the user message (a string, or content parts)."""
    starts: dict[str, int]
    """Per model at the last turn: the index of its user message."""
    answers: dict[str, str]
    """Per model at the last turn: the text of the turn's last assistant message."""
    behind: list[str]
    """Models whose history lacks this turn (their last turn failed)."""


def asked(messages: Iterable[Mapping[str, Any]]) -> int:
    """How many of ``messages`` the user sent: irouter's own (the summary request after ``max_steps``, the summary
    of turns dropped by ``on_overflow``) do not count."""
    return sum(
        1
        for msg in messages
        if msg.get("role") == "user"
        and msg.get("content") != FINAL_PROMPT
        and not str(msg.get("content")).startswith(SUMMARY_PREFIX)
    )


def last_turn(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    dropped: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> LastTurn:
    """The last turn of every model (see the module docstring); raises ``ValueError`` when there is none, when the
    models' last questions differ, or when a model still waits for tool results. ``dropped``: the messages each
    model's history lost to make room (``on_overflow``): their turns count as asked."""
    counts = {m: asked(h) + asked((dropped or {}).get(m, ())) for m, h in histories.items()}
    latest = max(counts.values(), default=0)
    if latest == 0:
        raise ValueError("There is no turn to compare yet: ask the models something first, e.g. chat('...').")
    at = [m for m in histories if counts[m] == latest]
    starts = {m: last_user(histories[m]) or 0 for m in at}
    question = histories[at[0]][starts[at[0]]].get("content")
    differ = [m for m in at if histories[m][starts[m]].get("content") != question]
    if differ:
        raise ValueError(
            f"The models' last questions differ ({at[0]} and {differ[0]}, histories set separately), so their answers "
            "cannot be compared; bring them to one question with chat.set_history(...), or ask a new one."
        )
    answers = {}
    for model in at:
        history = histories[model]
        waiting = pending_calls(history)
        if waiting:
            raise ValueError(
                f"{model} waits for the results of tool calls ({', '.join(str(c.get('id')) for c in waiting)}): its "
                "last turn has no answer yet. Answer them first with chat.answer_tool_calls(...)."
            )
        final = next((m for m in reversed(history[starts[model] + 1 :]) if m.get("role") == "assistant"), None)
        if final is None:
            raise ValueError(f"{model} has no answer to the last question (its history ends with the user message).")
        answers[model] = text_of(final.get("content"))
    return LastTurn(question, starts, answers, [m for m in histories if counts[m] < latest])


def snapshot(chat: _Conversation) -> dict[str, list[dict[str, Any]]]:
    """Every model's history as it is now (each read under its lock)."""
    copies = {}
    for model in chat._models:
        with chat._locks[model]:
            copies[model] = list(chat._history[model])
    return copies


def dropped_of(chat: _Conversation) -> dict[str, list[dict[str, Any]]]:
    """The messages each model's history lost to make room (``on_overflow``), as they are now."""
    copies = {}
    for model in chat._models:
        with chat._locks[model]:
            copies[model] = list(getattr(chat, "_dropped", {}).get(model, []))
    return copies


# --------------------------------------------------------------------------------------------- prompts


def labels(n: int) -> list[str]:
    """``A``, ``B``, ... ``Z``, ``AA``, ``AB``...: the names of ``n`` answers."""
    out = []
    for i in range(1, n + 1):
        label = ""
        while i:
            i, rest = divmod(i - 1, 26)
            label = chr(65 + rest) + label
        out.append(label)
    return out


def names(model: str) -> list[str]:
    """What of a slug may show in an answer: the slug, without a provider or variant suffix (``@deepinfra``,
    ``:free``), and the name after the last ``/`` (three characters at least)."""
    base = re.split(r"[@:]", model, maxsplit=1)[0]
    return [n for n in dict.fromkeys([model, base, base.rsplit("/", 1)[-1]]) if len(n) >= 3]


def mask(text: str, models: Sequence[str]) -> str:
    """``text`` with every name of ``models`` (`names`, any case, as a whole word, its ``-``, ``_`` or spaces
    written either way: ``GPT 4o mini`` for ``gpt-4o-mini``) replaced by `MASK`."""
    found = sorted({n for m in models for n in names(m)}, key=len, reverse=True)
    if not found:
        return text
    spelt = [r"[-_\s]?".join(re.escape(part) for part in re.split(r"[-_\s]+", n)) for n in found]
    pattern = r"(?<![\w.-])(?:" + "|".join(spelt) + r")(?![\w-])"
    return re.sub(pattern, MASK, text, flags=re.IGNORECASE)


def framed(question: Any, before: str, after: str) -> Any:
    """A user message content: ``before``, the question (text, or its parts as they were: images too), ``after``."""
    if isinstance(question, list):
        return [{"type": "text", "text": before}, *question, {"type": "text", "text": after}]
    return before + text_of(question) + after


def answer_blocks(shown: Sequence[tuple[str, str]], blind: bool, masked: bool | None = None) -> str:
    """The answers, labelled in order; with ``blind`` no model name, and competitors' names masked (unless
    ``masked`` is ``False``)."""
    models = [m for m, _ in shown]
    blocks = []
    for label, (model, text) in zip(labels(len(shown)), shown, strict=True):
        who = "" if blind else f' model="{model}"'
        body = mask(text, models) if (blind if masked is None else masked) else text
        blocks.append(f'<answer label="{label}"{who}>\n{body}\n</answer>')
    return "\n\n".join(blocks)


def judge_messages(question: Any, shown: Sequence[tuple[str, str]], criteria: str, blind: bool) -> list[dict[str, Any]]:
    """The system and user messages a judge gets for the answers ``shown`` (``(model, text)``, in order)."""
    tags = labels(len(shown))
    task = f"Criteria: {criteria}\n\nScore each answer ({', '.join(tags)}) from 0 to 10, with a one-sentence reason."
    after = f"\n</question>\n\n{answer_blocks(shown, blind)}\n\n{task}"
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": framed(question, "<question>\n", after)},
    ]


def synthesis_messages(question: Any, shown: Sequence[tuple[str, str]], instructions: str) -> list[dict[str, Any]]:
    """The system and user messages of `Chat.synthesize`'s request (answers labelled, no model names)."""
    after = f"\n</question>\n\n{answer_blocks(shown, blind=True, masked=False)}\n\n{instructions}"
    return [
        {"role": "system", "content": SYNTHESIS_SYSTEM},
        {"role": "user", "content": framed(question, "<question>\n", after)},
    ]


class Score(TypedDict):
    """One answer's score in a judge's reply."""

    reason: Annotated[str, "one sentence: why this score"]
    score: Annotated[float, "from 0 (wrong or useless) to 10 (excellent)"]


def verdict_type(tags: Sequence[str]) -> Any:
    """The structured output a judge replies with: one `Score` per label, all required."""
    make: Any = TypedDict
    return make("Verdict", dict.fromkeys(tags, Score))


def combine(models: Sequence[str], verdicts: Sequence[Verdict]) -> list[Ranked]:
    """The ranking of ``models`` by their mean score over the verdicts that succeeded (see the module docstring)."""
    good = [v for v in verdicts if v.error is None]
    if not good:
        return []
    means = {m: round(sum(v.scores[m] for v in good) / len(good), 6) for m in models}
    best_first = sorted(models, key=lambda m: (-means[m], models.index(m)))
    return [
        Ranked(
            m,
            1 + sum(1 for other in models if means[other] > means[m]),
            means[m],
            " / ".join(dict.fromkeys(v.reasons[m] for v in good if v.reasons.get(m))),
        )
        for m in best_first
    ]


# --------------------------------------------------------------------------------------------- running judges


def side_client(chat: _Conversation, slugs: list[str], options: Mapping[str, Any]) -> Any:
    """A copy of ``chat`` whose models are ``slugs`` (judges, a chairman), to send their requests with the chat's
    machinery: its endpoint and key, the client settings of its defaults (`CARRIED`), and its very accounts (the
    copy's meter is the chat's own, so budgets and the ledger are shared). Its histories are never used. Raises
    before any request for a slug that is not one, or a budget that cannot cap it."""
    from ._capabilities import check_spaces
    from ._client import check_models
    from ._transport import Endpoint
    from .endpoints import route

    slugs = check_models(slugs)
    check_spaces(slugs, chat.base_url)
    twin = copy.copy(chat)
    twin._models = slugs
    twin._routes = {s: chat._routes[s] if s in chat._routes else twin._with_client(route(s, None)) for s in slugs}
    if twin._endpoint is None and any(r is None for r in twin._routes.values()):
        twin._endpoint = Endpoint(None, None, client=chat._http_client)
    twin.defaults = {k: v for k, v in chat.defaults.items() if k in CARRIED}
    bounds = {k: options[k] for k in ("max_tokens", "max_completion_tokens", "n") if k in options}
    twin.defaults.update(bounds)  # the budget check bounds the requests by them (the plan merges them anyway)
    twin._check_budgets()
    return twin


def check_options(options: Mapping[str, Any], where: str) -> None:
    refused = [name for name in REFUSED if name in options]
    if refused:
        raise TypeError(
            f"{refused[0]}= is not an option of {where}: irouter sets the request's format itself, without tools or "
            "streaming. Pass request options such as temperature= or max_tokens=."
        )


def check_judges(judge: Any) -> list[str]:
    judges = [judge] if isinstance(judge, str) else judge
    if not isinstance(judges, (list, tuple)) or not judges or not all(isinstance(j, str) for j in judges):
        raise TypeError(f"judge must be a model slug or a list of slugs, got {judge!r}")
    return list(judges)


@dataclass
class Panel:
    """One `Chat.review` call, checked and ready: the judges' side client, the plan of their requests, and the jobs
    (a judge and a pass each)."""

    chat: _Conversation
    turn: LastTurn
    criteria: str
    blind: bool
    swap: bool
    client: Any
    plan: Plan
    jobs: dict[str, tuple[str, bool]]
    """``"judge"`` or ``"judge (swapped)"`` -> (judge, swapped)."""
    kept: dict[str, list[LedgerEntry]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, chat: _Conversation, judge: Any, criteria: Any, blind: Any, swap: Any, options: dict[str, Any]
    ) -> Panel:
        from . import _options as opts

        judges = check_judges(judge)
        for name, value in (("blind", blind), ("swap", swap)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if criteria is not None and (not isinstance(criteria, str) or not criteria.strip()):
            raise TypeError(f"criteria must be a non-empty string (or None for the default), got {criteria!r}")
        check_options(options, "chat.review(...)")
        turn = last_turn(snapshot(chat), dropped_of(chat))
        client = side_client(chat, judges, options)
        plan = client._plan({**options, "response_format": verdict_type(labels(len(turn.answers)))}, opts.CHAT)
        swap_too = swap and len(turn.answers) > 1
        jobs = {}
        for j in judges:
            jobs[j] = (j, False)
            if swap_too:
                jobs[f"{j} (swapped)"] = (j, True)
        return cls(chat, turn, criteria or DEFAULT_CRITERIA, blind, swap, client, plan, jobs)

    def shown(self, swapped: bool) -> list[tuple[str, str]]:
        items = list(self.turn.answers.items())
        return items[::-1] if swapped else items

    def messages(self, swapped: bool) -> list[dict[str, Any]]:
        return judge_messages(self.turn.question, self.shown(swapped), self.criteria, self.blind)

    def start(self, key: str) -> tuple[str, list[dict[str, Any]], Any]:
        """The judge, its messages, and the recorder (the chat's accounts, ``purpose="review"``) of one job."""
        from ._drivers import Recorder

        judge, swapped = self.jobs[key]
        self.kept[key] = []
        return judge, self.messages(swapped), Recorder(self.chat._meter, judge, "review", self.kept[key])

    def run(self, key: str) -> Any:
        """One job, in this thread: the parsed reply, or the irouter error that stopped it (as a value)."""
        judge, messages, recorder = self.start(key)
        try:
            return self.client._run(judge, messages[:1], messages[1], self.plan, recorder)
        except IrouterError as exc:
            return kept(exc)

    async def arun(self, key: str) -> Any:
        judge, messages, recorder = self.start(key)
        try:
            return await self.client._arun(judge, messages[:1], messages[1], self.plan, recorder)
        except IrouterError as exc:
            return kept(exc)

    def verdict(self, key: str, outcome: TurnResult | Exception) -> Verdict:
        judge, swapped = self.jobs[key]
        order = tuple(m for m, _ in self.shown(swapped))
        entries = self.kept.get(key, [])
        cost, latency = dollars(entries), sum(e.latency for e in entries) if entries else None
        if isinstance(outcome, Exception):
            return Verdict(judge, order, swapped, error=outcome, cost=cost, latency=latency)
        if not isinstance(outcome.value, Mapping):  # no structured reply at all (a tool call instead, say)
            error = StructuredOutputError(
                f"The judge replied without a verdict (finish_reason {outcome.reply.finish_reason!r})",
                text=outcome.reply.content,
                model=judge,
            )
            return Verdict(judge, order, swapped, error=error, cost=cost, latency=latency)
        scores, reasons = {}, {}
        for label, model in zip(labels(len(order)), order, strict=True):
            given = outcome.value[label]
            score = float(given["score"])
            if not (math.isfinite(score) and 0 <= score <= 10):
                error = StructuredOutputError(
                    f"The judge scored answer {label} {score:g}, outside 0..10",
                    text=outcome.reply.content,
                    model=judge,
                )
                return Verdict(judge, order, swapped, error=error, cost=cost, latency=latency)
            scores[model], reasons[model] = score, str(given["reason"]).strip()
        return Verdict(judge, order, swapped, scores, reasons, cost=cost, latency=latency)

    def review(self, outcomes: Mapping[str, Any]) -> Review:
        verdicts = [self.verdict(key, outcomes[key]) for key in self.jobs]
        return Review(
            ranking=combine(list(self.turn.answers), verdicts),
            verdicts=verdicts,
            judges=list(dict.fromkeys(j for j, _ in self.jobs.values())),
            question=text_of(self.turn.question),
            answers=dict(self.turn.answers),
            criteria=self.criteria,
            blind=self.blind,
            swap=self.swap,
            cost=dollars([e for key in self.jobs for e in self.kept.get(key, [])]),
        )


def kept(error: IrouterError) -> IrouterError:
    """A judge's error as its verdict keeps it: without the reply type made for this review (``target``), which
    no pickle could name, so a `Review` pickles like its other values."""
    if isinstance(error, StructuredOutputError):
        error.target = None
    return error


def dollars(entries: Sequence[LedgerEntry]) -> float | None:
    """What ledger entries cost: ``None`` when requests were made but none reported a cost."""
    costs = [e.cost for e in entries if e.cost is not None]
    return round(sum(costs), 12) if costs or not entries else None


def review(chat: _Conversation, judge: Any, criteria: Any, blind: Any, swap: Any, options: dict[str, Any]) -> Review:
    """`Chat.review`: every job at once (a thread each); Ctrl-C stops them all, like a turn."""
    from ._cancel import check_not_running
    from ._engine import fan_out

    check_not_running(chat)
    panel = Panel.of(chat, judge, criteria, blind, swap, options)
    panel.client._check_capabilities(panel.messages(False)[1]["content"], panel.plan)
    try:
        return panel.review(fan_out(list(panel.jobs), panel.run, panel.plan.cancel))
    finally:
        chat._write_log()  # the judges' requests, like a turn's


def areview(chat: _Conversation, judge: Any, criteria: Any, blind: Any, swap: Any, options: dict[str, Any]) -> Any:
    """`AsyncChat.review`: checked now, a coroutine of the `Review` (the jobs run as tasks)."""
    from ._cancel import check_not_running

    check_not_running(chat)
    panel = Panel.of(chat, judge, criteria, blind, swap, options)
    content = panel.messages(False)[1]["content"]
    pending = not panel.client._check_capabilities(content, panel.plan, fetch=False)

    async def run() -> Review:
        from ._engine import afan_out

        await panel.client._acheck_capabilities(content, panel.plan, pending)
        try:
            return panel.review(await afan_out(list(panel.jobs), panel.arun, panel.plan.cancel))
        finally:
            chat._write_log()

    return run()


# --------------------------------------------------------------------------------------------- synthesize


@dataclass
class Synthesis:
    """One `Chat.synthesize` call, checked and ready."""

    chat: _Conversation
    model: str
    client: Any
    plan: Plan
    messages: list[dict[str, Any]]

    @classmethod
    def of(cls, chat: _Conversation, model: Any, instructions: Any, options: dict[str, Any]) -> Synthesis:
        from . import _options as opts

        if not isinstance(model, str):
            raise TypeError(f"model must be a model slug, got {model!r}")
        if instructions is not None and (not isinstance(instructions, str) or not instructions.strip()):
            raise TypeError(f"instructions must be a non-empty string (or None), got {instructions!r}")
        check_options(options, "chat.synthesize(...)")
        turn = last_turn(snapshot(chat), dropped_of(chat))
        client = side_client(chat, [model], options)
        plan = client._plan(options, opts.CHAT)
        messages = synthesis_messages(turn.question, list(turn.answers.items()), instructions or DEFAULT_INSTRUCTIONS)
        return cls(chat, model, client, plan, messages)

    def recorder(self) -> Any:
        from ._drivers import Recorder

        return Recorder(self.chat._meter, self.model, "synthesize")

    def run(self, model: str) -> TurnResult:
        return self.client._run(model, self.messages[:1], self.messages[1], self.plan, self.recorder())  # type: ignore[no-any-return]

    async def arun(self, model: str) -> TurnResult:
        return await self.client._arun(model, self.messages[:1], self.messages[1], self.plan, self.recorder())  # type: ignore[no-any-return]


def synthesize(chat: _Conversation, model: Any, instructions: Any, options: dict[str, Any]) -> str:
    from ._cancel import check_not_running
    from ._engine import fan_out

    check_not_running(chat)
    job = Synthesis.of(chat, model, instructions, options)
    job.client._check_capabilities(job.messages[1]["content"], job.plan)
    try:
        return str(fan_out([job.model], job.run, job.plan.cancel)[job.model].value)
    finally:
        chat._write_log()  # the chairman's requests, like a turn's


def asynthesize(chat: _Conversation, model: Any, instructions: Any, options: dict[str, Any]) -> Any:
    from ._cancel import check_not_running

    check_not_running(chat)
    job = Synthesis.of(chat, model, instructions, options)
    content = job.messages[1]["content"]
    pending = not job.client._check_capabilities(content, job.plan, fetch=False)

    async def run() -> str:
        from ._engine import afan_out

        await job.client._acheck_capabilities(content, job.plan, pending)
        try:
            return str((await afan_out([job.model], job.arun, job.plan.cancel))[job.model].value)
        finally:
            chat._write_log()

    return run()


# --------------------------------------------------------------------------------------------- adopt


def adopted(
    histories: Mapping[str, Sequence[dict[str, Any]]],
    model: Any,
    text: Any,
    dropped: Mapping[str, Sequence[dict[str, Any]]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every model's history after adopting ``model``'s last answer (or ``text``): each keeps everything up to its
    last user message, then the one assistant message ``{"role": "assistant", "content": text}``. Raises before
    changing anything (see `Chat.adopt`)."""
    if (model is None) == (text is None):
        raise TypeError("Pass the slug of the answer to adopt, chat.adopt('x/y'), or a text: chat.adopt(text='...')")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise TypeError(f"text must be a non-empty string, got {text!r}")
    if model is not None and model not in histories:
        raise ValueError(f"{model!r} is not a model of this chat; its models are {list(histories)}")
    turn = last_turn(histories, dropped)
    if turn.behind:
        raise ValueError(
            f"The last turn of {', '.join(turn.behind)} failed, so it cannot go on from the adopted answer: ask again "
            "(or drop that model) before adopting."
        )
    chosen = turn.answers[model] if model is not None else text
    return {m: [*h[: turn.starts[m] + 1], {"role": "assistant", "content": chosen}] for m, h in histories.items()}


def adopt(chat: _Conversation, model: Any, text: Any) -> None:
    """`Chat.adopt`: checked, then every history replaced at once, while no turn runs (a sync chat waits for a
    turn running in another thread; an async chat refuses while one of its turns is under way)."""
    from contextlib import ExitStack

    from ._cancel import check_not_running

    check_not_running(chat)
    with ExitStack() as held:
        if chat._awaits:
            busy = [m for locks in chat._async_locks.values() for m, lock in locks.items() if lock.locked()]
            if busy:
                raise RuntimeError(f"A turn of {busy[0]} is under way: await it before adopting an answer.")
        else:
            for m in chat._models:
                held.enter_context(chat._turn_locks[m])
        histories = adopted(snapshot(chat), model, text, dropped_of(chat))
        for m in chat._models:
            held.enter_context(chat._locks[m])
        for m, history in histories.items():
            chat._rewrite(m, history)
    chat._write_log()  # the log holds the adopted answers at once
