"""`Chat` and `AsyncChat`: a conversation with one model or several at once, keeping each model's history and
token usage. The two share everything but how a turn is driven (threads or an event loop)."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

from . import _options as opts
from ._cancel import CancelSignal, check_not_running, running
from ._client import AsyncClosing, ModelClient, Plan, env_switch
from ._compat import CHAT_ARGS, positional_options
from ._content import to_content
from ._context import Fit, make_room, needed, summary_request, summary_tokens, with_summary
from ._display import Progress, conversation_markdown, in_notebook, side_by_side_html, summary
from ._drivers import Recorder
from ._engine import FINAL_PROMPT, TurnResult, afan_out, fan_out
from ._ledger import LedgerEntry, Meter, check_limit, worst_case
from ._outputs import citations_in, images_in, last_reasoning
from ._persist import FORMAT, check_history, check_saved, dumps, jsonable_options, merge_saved_options, write_atomic
from ._streams import AsyncStream, Emitter, Ended, Stream
from ._types import Answer, Body, Headers, Message, Models, T, Tools
from ._wire import user_message
from .catalog import cached_records
from .errors import MultiModelError
from .report import Report
from .tools import ToolCall, answer_message, describe_call, pending_calls

if TYPE_CHECKING:
    from .review import Review

DEFAULT_SYSTEM = "You are a helpful assistant."
_C = TypeVar("_C", bound="_Conversation")


class _Conversation(ModelClient):
    """What `Chat` and `AsyncChat` share: per-model histories, the accounts, saving, display. See `Chat`."""

    def __init__(
        self,
        model: str | list[str] | tuple[str, ...],
        system: str | None = DEFAULT_SYSTEM,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_cost: float | None = None,
        max_total_tokens: int | None = None,
        allow_unpriced: bool = False,
        http_client: Any = None,
        log: bool | str | os.PathLike[str] | None = None,
        **defaults: Any,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string, got {type(system).__name__}")
        if not isinstance(allow_unpriced, bool):
            raise TypeError(f"allow_unpriced must be True or False, got {allow_unpriced!r}")
        self._log_path = _log_file(log)
        """The conversation log's file (``None``: not logged); also the response cache's."""
        super().__init__(model, api_key, base_url, defaults, http_client)
        self._meter = Meter(max_cost, max_total_tokens, self._quote)
        self._allow_unpriced = allow_unpriced
        self._meter.strict = not allow_unpriced
        self._check_budgets()
        self.system = system
        self._new_locks()
        self._history: dict[str, list[dict[str, Any]]] = {m: self._start() for m in self._models}
        self._turn_options: dict[str, dict[str, Any]] = {}
        """Each model's last turn's keyword arguments: `answer_tool_calls` goes on with them."""
        self._dropped: dict[str, list[dict[str, Any]]] = {m: [] for m in self._models}
        """Messages removed from each model's history to make room (``on_overflow``), oldest first."""
        self._new_log_conversation()

    def _new_log_conversation(self) -> None:
        """The next logged call starts a new conversation in the log (a new chat, or its history replaced). Ledger
        entries already logged (with the conversation before, or the chat a fork came from) are not logged again."""
        done = getattr(self, "_logged", {}).get("", 0)
        self._log_id: str | None = None
        self._logged: dict[str, int] = {"": done} if done else {}
        """How many messages of each model's history, and of the ledger (key ``""``), are in the log."""
        self._log_shift: dict[str, int] = {}
        """How far each model's positions in the log run ahead of its history's: messages taken out of history
        to make room (``on_overflow``) stay in the log, so its next messages go after them."""

    @property
    def log_id(self) -> str | None:
        """The id of this conversation in the log (``Chat(..., log=True)``), once a call was logged; ``None``
        otherwise. `Chat.resume` goes on from it."""
        return self._log_id

    @property
    def log_path(self) -> Path | None:
        """The file this chat logs to (``log=``), or ``None`` when it is not logged."""
        return self._log_path

    def _store_path(self) -> Any:
        return self._log_path or super()._store_path()

    def _write_log(self) -> None:
        """Add what the last call added (messages of every model, ledger entries) to the log; never raises (a file
        that cannot be used gives one `StoreWarning`)."""
        if self._log_path is None:
            return
        from ._log import Turn, new_id, write_turn

        with self._log_lock:
            entries = list(self._meter.entries)
            done = self._logged.get("", 0) if self._logged.get("", 0) <= len(entries) else 0
            new = {m: (self._logged.get(m, 0), list(h[self._logged.get(m, 0) :])) for m, h in self._history.items()}
            if not any(messages for _, messages in new.values()) and done == len(entries):
                return
            data = self.to_dict()
            settings = {k: v for k, v in data.items() if k not in ("history", "usage", "cost", "ledger")}
            conversation = self._log_id or new_id()
            shift = getattr(self, "_log_shift", {})
            at = {m: (start + shift.get(m, 0), messages) for m, (start, messages) in new.items()}
            if write_turn(self._log_path, Turn(conversation, settings, at, entries[done:])):
                self._log_id = conversation
                self._logged = {m: start + len(messages) for m, (start, messages) in new.items()}
                self._logged[""] = len(entries)

    def _rewrite(self, model: str, history: list[dict[str, Any]]) -> None:
        """``model``'s history becomes ``history`` in place of one that may differ anywhere (turns dropped, an
        answer adopted), while the caller holds its lock: the log rewrites it from the first message that changed
        on its next write."""
        old = self._history[model]
        same = next(
            (i for i, (a, b) in enumerate(zip(old, history, strict=False)) if a != b), min(len(old), len(history))
        )
        self._history[model] = history
        with self._log_lock:
            if model in self._logged:
                self._logged[model] = min(self._logged[model], same)

    def _shift_log(self, model: str, removed: int) -> None:
        """``removed`` messages (net of a summary) left ``model``'s history before its logged tail: the log keeps
        them, and the tail's positions in the log stay where they were."""
        logged = self._logged.get(model, 0)
        if self._log_path is None or removed <= 0 or not logged:
            return
        kept = max(0, logged - removed)
        shift = dict(getattr(self, "_log_shift", {}))
        shift[model] = shift.get(model, 0) + logged - kept
        self._log_shift = shift
        self._logged[model] = kept

    def _new_locks(self) -> None:
        """Locks belong to one object and one process: made here, and anew for copies and unpickled chats."""
        self._locks = {m: threading.RLock() for m in self._models}
        """Guard history and usage changes (short)."""
        self._turn_locks = {m: threading.RLock() for m in self._models}
        """Held for a whole sync call (every model's, taken in order by the thread that commits): turns on one model
        never interleave."""
        self._async_locks: dict[Any, dict[str, Any]] = {}
        """The same for async turns: per event loop, one asyncio lock per model (closed loops are dropped)."""
        self._log_lock = threading.Lock()

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        for name in ("_locks", "_turn_locks", "_async_locks", "_log_lock"):
            state.pop(name, None)
        # a turn's own options matter only while its calls wait for answers: the others (a lambda hook, a local
        # tool given to one call) must not stop the chat from pickling
        state["_turn_options"] = {m: o for m, o in self._turn_options.items() if m in self._models and self._pending(m)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._new_locks()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_log_id"], state["_logged"] = None, {}  # unpickled, it goes on as a conversation of its own
        return state

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        twin = super().__deepcopy__(memo)
        twin._new_log_conversation()  # both may go on: neither writes over the other's messages in the log
        return twin

    def _start(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def _prepare(
        self, message: Any, kwargs: dict[str, Any], fetch: bool = True, stream: bool = False
    ) -> tuple[dict[str, Any], Plan, bool]:
        """Check everything and build the user message, before any request."""
        self._refuse_while_pending()
        user, plan = user_message(to_content(message)), self._plan({**kwargs, "stream": stream}, opts.CHAT)
        pending = not self._check_capabilities(user["content"], plan, fetch)
        self._turn_options = {m: dict(kwargs) for m in self._models}
        return user, plan, pending

    # ------------------------------------------------------------------------------------------ calls left pending
    @property
    def pending_tool_calls(self) -> Any:
        """Tool calls the model made that irouter could not run (tools given as schema dicts) and that wait for
        their results: a list of `ToolCall` (``id``, ``name``, ``arguments``), ``{slug: list}`` for several models.
        Answer them with `answer_tool_calls`; until then the chat takes no new message."""
        return self._shape({m: self._pending(m) for m in self._models})

    def _pending(self, model: str) -> list[ToolCall]:
        history = self._history[model]
        last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=-1)
        step = sum(1 for m in history[last_user + 1 :] if m.get("role") == "assistant")
        return [describe_call(c, model, step) for c in pending_calls(history)]

    def _refuse_while_pending(self) -> None:
        waiting = {m: calls for m in self._models if (calls := self._pending(m))}
        if waiting:
            shown = "; ".join(
                (f"{m}: " if len(self._models) > 1 else "") + ", ".join(f"{c.name} (id {c.id!r})" for c in calls)
                for m, calls in waiting.items()
            )
            raise RuntimeError(
                f"The model is waiting for the results of tool calls irouter cannot run: {shown}. Answer them "
                "first with chat.answer_tool_calls({call_id: result, ...}) (they are in chat.pending_tool_calls), "
                "or start over with chat.reset_history()."
            )

    def _check_starts(self, starts: dict[str, Any]) -> None:
        """Checked again once the call holds its models' turn locks (a turn running in another thread or task may
        have left calls pending, or answered them, after the first check): a new message only where no call waits,
        answers only to the calls that still wait. Raises before any request."""
        if any(isinstance(start, dict) for start in starts.values()):
            self._refuse_while_pending()
            return
        for model, answers in starts.items():
            waiting = [str(c.get("id")) for c in pending_calls(self._history[model])]
            if waiting != [a["tool_call_id"] for a in answers]:
                where = f" of {model}" if len(self._models) > 1 else ""
                raise RuntimeError(
                    f"The tool calls{where} were answered meanwhile (by another thread or task); pending now: "
                    f"{waiting}. See chat.pending_tool_calls."
                )

    def _answers(self, results: Any, kwargs: dict[str, Any]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Plan]]:
        """`answer_tool_calls`'s arguments checked: the tool messages per model, and the plan each model's turn
        goes on with (its last turn's options, updated by ``kwargs``; they stay updated once the turn goes on, see
        `_commit`). Raises before any request."""
        if not isinstance(results, Mapping):
            raise TypeError(f"results must be a dict of {{call_id: result}}, got {type(results).__name__}")
        if len(self._models) == 1:
            per_model = {self._models[0]: results}
        else:
            wrong = [k for k, v in results.items() if k not in self._models or not isinstance(v, Mapping)]
            if wrong or not results:
                raise TypeError(
                    "This chat has several models: pass {slug: {call_id: result, ...}} (the shape of "
                    f"chat.pending_tool_calls); not models of this chat or not dicts: {wrong}"
                )
            per_model = dict(results)
        answers: dict[str, list[dict[str, Any]]] = {}
        for model, given in per_model.items():
            calls = pending_calls(self._history[model])
            where = f" for {model}" if len(self._models) > 1 else ""
            ids = [str(c.get("id")) for c in calls]
            if not calls:
                raise ValueError(f"No tool calls are waiting for results{where}")
            unknown = [k for k in given if k not in ids]
            missing = [i for i in ids if i not in given]
            if unknown or missing:
                raise ValueError(
                    f"Answer every pending tool call{where} by its id: pending {ids}"
                    + (f"; not pending: {unknown}" if unknown else "")
                    + (f"; not answered: {missing}" if missing else "")
                )
            answers[model] = [answer_message(i, given[i]) for i in ids]
        options = {m: {**self._turn_options.get(m, {}), **kwargs} for m in answers}
        plans = {m: self._plan(options[m], opts.ANSWER) for m in answers}
        for model, plan in plans.items():
            plan.turn_options = options[model]
        return answers, plans

    def _answered(self, values: dict[str, Any]) -> Any:
        return values[self._models[0]] if len(self._models) == 1 else values

    def _recorder(self, model: str) -> Recorder:
        return Recorder(self._meter, model)

    def _plan(self, kwargs: Mapping[str, Any], place: str) -> Plan:
        plan = super()._plan(kwargs, place)
        summarizer = [plan.summarize_with] if plan.on_overflow == "summarize" and plan.summarize_with else []
        others = [*plan.fallbacks.models, *summarizer]  # a call's own fallbacks and summarising model
        if others and getattr(self, "_meter", None) is not None:
            self._check_budgets(others, plan.body)
        return plan

    def _check_budgets(self, only: Sequence[str] = (), options: Mapping[str, Any] | None = None) -> None:
        """A budget is a cap only if each request's worst case can be known before it is sent: refuse one on a
        model without prices (``max_cost``) or without a completion limit, unless ``allow_unpriced``. ``only``:
        check just these models (a call's fallbacks), with the call's ``options``."""
        meter = self._meter
        if self._allow_unpriced or (meter.max_cost is None and meter.max_total_tokens is None):
            return
        given = self.defaults if options is None else options
        body: dict[str, Any] = {k: given[k] for k in ("max_tokens", "max_completion_tokens", "n") if k in given}
        extra = []
        for name in ("models", "fallbacks"):  # OpenRouter's fallbacks and irouter's may answer instead: priced too
            others = self.defaults.get(name)
            extra += [m for m in others if isinstance(m, str)] if isinstance(others, (list, tuple)) else []
        summarizer = self.defaults.get("summarize_with")
        if self.defaults.get("on_overflow") == "summarize" and isinstance(summarizer, str):  # asked when room runs out
            extra.append(summarizer)
        for model in dict.fromkeys(only or [*self._models, *extra]):
            bounded = meter.max_cost is None and worst_case(body, None)[0] is not None
            quote = None if bounded else self._quote(model, fetch=True)  # no catalog needed: none fetched
            tokens, cost = worst_case(body, quote)
            unpriced = quote is None or quote.cost(0, 0) is None
            for name, known in (("max_cost", cost), ("max_total_tokens", tokens)):
                if getattr(meter, name) is None or known is not None:
                    continue
                if name == "max_cost" and unpriced and cached_records(self.base_url, max_age=float("inf")) is None:
                    missing, fix = "could not be fetched", "Try again later, or pass"
                elif name == "max_cost" and unpriced:
                    missing, fix = "lists no price for it", "Pass"
                else:
                    missing, fix = (
                        "does not say how long its answers can be",
                        "Set max_tokens=... as a default, or pass",
                    )
                raise ValueError(
                    f"{name}= cannot be a cap for {model}: the model catalog of {self.base_url} {missing}, so the "
                    f"worst case of a request cannot be reserved before it is sent. {fix} allow_unpriced=True to "
                    "count only what requests report after they end (requests in flight together may then pass "
                    "the cap)."
                )

    def _commit(
        self,
        results: dict[str, TurnResult],
        plans: dict[str, Plan],
        cancel: CancelSignal,
        fits: Mapping[str, Fit] | None = None,
    ) -> dict[str, Any]:
        """The call's finished turns join their histories, together and only if the call was not cancelled
        meanwhile (Ctrl-C, a closed stream): an interrupted call keeps nothing, for any model. Returns the values.
        The caller holds every model's turn lock. A model going on from answered tool calls keeps the options its
        turn went on with (``plans[model].turn_options``), for the next `answer_tool_calls`."""
        with ExitStack() as held:
            for model in results:
                held.enter_context(self._locks[model])
            cancel.check()
            for model, result in results.items():
                fit = (fits or {}).get(model)
                if fit is not None:  # the turn went from a shortened history: that is what was sent
                    self._shift_log(model, len(self._history[model]) - len(fit.history))
                    self._history[model] = [*fit.history, *result.messages]
                    self._dropped[model] = [*self._dropped.get(model, []), *fit.dropped]
                else:
                    self._history[model].extend(result.messages)
                options = plans[model].turn_options
                if options is not None:
                    self._turn_options[model] = options
        return {m: r.value for m, r in results.items()}

    @property
    def dropped(self) -> Any:
        """Messages taken out of history to make room in the context window (``on_overflow="drop_oldest"`` or
        ``"summarize"``), oldest first: a list, or ``{slug: list}`` for several models. History holds what was
        really sent (with a summary in their place, for ``"summarize"``). Emptied by `reset_history`."""
        dropped = getattr(self, "_dropped", {})
        return self._shape({m: list(dropped.get(m, [])) for m in self._models})

    @property
    def cache_savings(self) -> Any:
        """Dollars prompt caching saved so far, at the catalog's prices (cache reads at the read price instead of
        the prompt price, less the extra paid for cache writes; see `LedgerEntry.cache_savings`): a number, or
        ``{slug: number}`` for several models; ``None`` when no request reported a saving the catalog can price.
        Reset by `reset_usage`."""
        return self._shape({m: self._meter.cache_savings(m) for m in self._models})

    def count_tokens(self, message: Message | None = None) -> Any:
        """An estimate of the prompt tokens of the next request: the history, plus ``message`` when given, with
        the default options and tools: a number, or ``{slug: number}`` for several models.

        It is irouter's fast local estimate (no tokenizer: text at about three characters a token, a fixed count
        per attachment), which errs on the high side; the same estimate decides, before sending, whether a
        request fits the model's context window (the catalog's ``context_length``, see `ModelInfo`)."""
        plan = self._plan({}, opts.CHAT)
        new = [user_message(to_content(message))] if message is not None else []
        counts = {}
        for model in self._models:
            spec = self._spec(model, plan)
            counts[model] = needed(spec.body(model, [*self._history[model], *new], spec.turn_options()))[0]
        return self._shape(counts)

    def _room(self, model: str, history: list[dict[str, Any]], start: Any, plan: Plan) -> Fit | None:
        """With ``on_overflow``, the history a turn can start from in ``model``'s context window (oldest whole
        turns dropped; raises `ContextWindowError` when even that does not fit); ``None`` when nothing need go."""
        if plan.on_overflow is None:  # no policy: nothing to work out (the engine still checks each request)
            return None
        spec = self._spec(model, plan)
        if not spec.context_length:
            return None
        new = list(start) if isinstance(start, list) else [start]
        options = spec.turn_options()

        def measure(kept: list[dict[str, Any]]) -> tuple[int, int]:
            return needed(spec.body(model, [*kept, *new], options))

        room = 2 * summary_tokens(spec.context_length) if plan.on_overflow == "summarize" else 0
        fit = make_room(model, history, measure, spec.context_length, isinstance(start, list), room)
        fit.summary_tokens = room // 2
        return fit if fit.dropped else None

    @staticmethod
    def _summary_plan(plan: Plan, tokens: int) -> Plan:
        """The summarising request's plan: the call's transport settings and cancel signal, a bounded answer."""
        return Plan(
            {"max_tokens": tokens},
            extra_headers=plan.extra_headers,
            timeout=plan.timeout,
            max_retries=plan.max_retries,
            max_retry_wait=plan.max_retry_wait,
            cancel=plan.cancel,
        )

    def _summarizer(self, plan: Plan) -> Recorder:
        """Where the summary's request is accounted: the chat's ledger, ``purpose="summarize"`` (so `cost` and
        `usage` count it, like a judge's)."""
        assert plan.summarize_with is not None  # asked for only with on_overflow="summarize"
        return Recorder(self._meter, plan.summarize_with, "summarize")

    def _fit(self, model: str, history: list[dict[str, Any]], start: Any, plan: Plan) -> Fit | None:
        """`_room`, with the summary made (``on_overflow="summarize"``) by ``summarize_with``."""
        fit = self._room(model, history, start, plan)
        if fit is not None and plan.on_overflow == "summarize" and plan.summarize_with:
            asked = summary_request(fit.dropped)
            summary_plan, accounts = self._summary_plan(plan, fit.summary_tokens), self._summarizer(plan)
            text = self._run(plan.summarize_with, [], asked, summary_plan, accounts).value
            fit.history = with_summary(fit, str(text))
        return fit

    async def _afit(self, model: str, history: list[dict[str, Any]], start: Any, plan: Plan) -> Fit | None:
        """`_fit`, awaited."""
        fit = self._room(model, history, start, plan)
        if fit is not None and plan.on_overflow == "summarize" and plan.summarize_with:
            asked = summary_request(fit.dropped)
            summary_plan, accounts = self._summary_plan(plan, fit.summary_tokens), self._summarizer(plan)
            text = (await self._arun(plan.summarize_with, [], asked, summary_plan, accounts)).value
            fit.history = with_summary(fit, str(text))
        return fit

    @property
    def history(self) -> Any:
        """The messages so far (OpenAI format, plain dicts): a list for one model, ``{slug: list}`` for several."""
        return self._shape(self._history)

    @property
    def usage(self) -> Any:
        """Tokens used so far, summed over every request: ``{'prompt_tokens', 'completion_tokens',
        'total_tokens'}`` for one model, ``{slug: that}`` for several. Requests of `review` and `synthesize` count
        too (see `cost`)."""
        lines = {m: self._meter.usage(m) for m in self._lines()}
        if len(self._models) > 1 or len(lines) == 1:
            return self._shape(lines)
        return {key: sum(line[key] for line in lines.values()) for key in lines[self._models[0]]}

    @property
    def cost(self) -> Any:
        """Dollars spent so far, as the server reported them (OpenRouter's ``usage.cost``): a number, or
        ``{slug: number}`` for several models. ``None`` for a model whose server reports no cost (see
        `estimated_cost`). Reset by `reset_usage`.

        The requests of `review` (judges) and `synthesize` count under their model's slug: a model that is not one
        of the chat's gets a line of its own after the chat's models (a one-model chat adds them to its number);
        `ledger` tells them apart by ``purpose``."""
        return self._summed({m: self._meter.cost(m) for m in self._lines()})

    @property
    def estimated_cost(self) -> Any:
        """`cost`, with the catalog's prices filling in for requests whose server reported no cost (an estimate:
        ``None`` when neither is known)."""
        return self._summed({m: self._meter.cost(m, estimated=True) for m in self._lines()})

    def _lines(self) -> list[str]:
        """The slugs `usage` and `cost` count: the chat's models, then the other models `review` and `synthesize`
        asked."""
        extra = [e.model for e in list(self._meter.entries) if e.purpose is not None and e.model not in self._models]
        return [*self._models, *dict.fromkeys(extra)]

    def _summed(self, lines: dict[str, float | None]) -> Any:
        """Dollars per line; one model: the lines summed (``None`` when none is known)."""
        if len(self._models) > 1 or len(lines) == 1:
            return self._shape(lines)
        known = [v for v in lines.values() if v is not None]
        return round(sum(known), 12) if known else None

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every request so far, oldest first, as `LedgerEntry` records (all models): model asked and model that
        answered, provider, generation id, tokens, cost, latency, time to first token, finish reason, tool step.
        ``pandas.DataFrame(chat.ledger)`` makes it a table. Reset by `reset_usage`."""
        return list(self._meter.entries)

    @property
    def max_cost(self) -> float | None:
        """Dollars this chat may spend (``None``: no limit). Requests stop with `BudgetExceeded` once reached."""
        return self._meter.max_cost  # type: ignore[no-any-return]

    @max_cost.setter
    def max_cost(self, value: float | None) -> None:
        previous, self._meter.max_cost = self._meter.max_cost, check_limit("max_cost", value)
        try:
            self._check_budgets()
        except ValueError:
            self._meter.max_cost = previous
            raise

    @property
    def max_total_tokens(self) -> int | None:
        """Tokens this chat may use (``None``: no limit). Requests stop with `BudgetExceeded` once reached."""
        return self._meter.max_total_tokens  # type: ignore[no-any-return]

    @max_total_tokens.setter
    def max_total_tokens(self, value: int | None) -> None:
        previous, self._meter.max_total_tokens = self._meter.max_total_tokens, check_limit("max_total_tokens", value)
        try:
            self._check_budgets()
        except ValueError:
            self._meter.max_total_tokens = previous
            raise

    @property
    def images(self) -> Any:
        """Images the models made (``modalities=["image", "text"]``), oldest first: a list of `GeneratedImage`
        (``.data``, ``.save(path)``, shown inline in notebooks); ``{slug: list}`` for several models."""
        return self._shape({m: images_in(h) for m, h in self._history.items()})

    @property
    def web_citations(self) -> Any:
        """Web-search citations of the answers so far (``url``, ``title``, ``content``); ``{slug: list}`` for several
        models. Cleared by `reset_history`."""
        return self._shape({m: citations_in(h) for m, h in self._history.items()})

    @property
    def reasoning(self) -> Any:
        """The reasoning text of the last answer, when the model sent it (``None`` otherwise); ``{slug: text}``."""
        return self._shape({m: last_reasoning(h) for m, h in self._history.items()})

    @property
    def turns(self) -> int:
        """How many messages the user sent, in the (first model's) history (irouter's own summary request after
        ``max_steps`` does not count)."""
        return sum(
            1
            for msg in self._history[self._models[0]]
            if msg.get("role") == "user" and msg.get("content") != FINAL_PROMPT
        )

    def reset_history(self) -> None:
        """Back to the system prompt alone, for every model (usage is kept)."""
        for model in self._models:
            with self._locks[model]:
                self._history[model] = self._start()
                self._dropped = {**getattr(self, "_dropped", {}), model: []}
        self._new_log_conversation()

    def adopt(self, model: str | None = None, *, text: str | None = None) -> None:
        """Go on from one answer: the last answer of ``model`` (a slug of this chat), or ``text`` (say, from
        `synthesize`), becomes every model's last answer.

        Each model's last turn (from its last user message on: tool steps, reasoning and all) is replaced by one
        message, ``{"role": "assistant", "content": text}``, where ``text`` is the chosen model's final answer
        (the text of its turn's last assistant message); the chosen model's own turn is replaced the same way. So
        every history ends with the same user message and the same answer, and the next turn goes on from there.
        Earlier turns, usage and the ledger are untouched.

        Atomic, like a turn: everything is checked first, and nothing changes when this raises -- ``ValueError``
        for a slug not in the chat, no turn yet, a model whose last turn failed, a model still waiting for tool
        results, or models whose last questions differ; ``TypeError`` for neither or both of ``model`` and ``text``.
        A sync chat waits for a turn running in another thread; an `AsyncChat` refuses while a turn is under way.
        """
        from .review import adopt

        adopt(self, model, text)

    def reset_usage(self) -> None:
        """Token counters, cost and the ledger back to zero (history is kept; budgets start over)."""
        self._meter.reset()

    def reset(self) -> None:
        """Both `reset_history` and `reset_usage`."""
        self.reset_history()
        self.reset_usage()

    # ------------------------------------------------------------------------------------------ history in and out
    def set_history(self, history: Any, model: str | None = None) -> None:
        """Replace the history: for a one-model chat a list of messages; for several, ``{slug: list}`` (any of the
        models) or a list with ``model=slug``. Messages are checked first (roles system, developer, user,
        assistant, tool; plain JSON); nothing changes if any is wrong."""
        if isinstance(history, Mapping):
            if model is not None:
                raise TypeError("Pass either {slug: history} or a list with model=slug, not both")
            unknown = [m for m in history if m not in self._models]
            if unknown:
                raise ValueError(f"Not models of this chat: {unknown}; its models are {self._models}")
            updates = {m: check_history(h, f"history[{m!r}]") for m, h in history.items()}
        else:
            if model is None:
                if len(self._models) > 1:
                    raise TypeError("This chat has several models: pass {slug: history}, or a list with model=slug")
                model = self._models[0]
            if model not in self._models:
                raise ValueError(f"{model!r} is not a model of this chat; its models are {self._models}")
            updates = {model: check_history(history)}
        for slug, messages in updates.items():
            with self._locks[slug]:
                self._history[slug] = messages
        self._new_log_conversation()

    def to_dict(self) -> dict[str, Any]:
        """The chat as plain JSON data: models, system prompt, base URL, options, budgets, history, usage, cost
        and the ledger. Never the API key. Options that are not JSON (tool functions, hooks, types) are left out
        and named under ``"unsaved_options"``; pass them again when loading."""
        options, unsaved = jsonable_options(self.defaults)
        return {
            "format": FORMAT,
            "models": list(self._models),
            "system": self.system,
            "base_url": self.base_url,
            "options": options,
            "unsaved_options": unsaved,
            "max_cost": self.max_cost,
            "max_total_tokens": self.max_total_tokens,
            "allow_unpriced": self._allow_unpriced,
            "history": {m: [dict(msg) for msg in h] for m, h in self._history.items()},
            "usage": {m: self._meter.usage(m) for m in self._models},
            "cost": {m: self._meter.cost(m) for m in self._models},
            "ledger": [entry.to_dict() for entry in self._meter.entries],
            "dropped": {m: [dict(msg) for msg in d] for m, d in getattr(self, "_dropped", {}).items() if d},
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: Any = None,
        **options: Any,
    ) -> Any:
        """A chat back from `to_dict` data, ready to go on. ``api_key`` (or ``OPENROUTER_API_KEY``) is needed as
        for a new chat; ``base_url`` and ``options`` (also ``system``, ``max_cost``, ``max_total_tokens`` and
        ``allow_unpriced``) override what was saved, except ``extra_headers``, which add to the saved ones (give
        the secret headers the file left out again this way).

        Every field is checked first: anything of the wrong shape or type raises ``ValueError`` naming the field
        (``Saved chat: ledger[0]['cost'] must be a number or null, got '0.5'``)."""
        saved = check_saved(data)
        models = saved["models"] if len(saved["models"]) > 1 else saved["models"][0]
        settings = {
            "system": saved["system"],
            "api_key": api_key,
            "base_url": base_url or _saved_base_url(saved["base_url"]),
            "max_cost": saved["max_cost"],
            "max_total_tokens": saved["max_total_tokens"],
            "allow_unpriced": saved["allow_unpriced"],
            "http_client": http_client,
        }
        options = dict(options)
        for name in ("system", "max_cost", "max_total_tokens", "allow_unpriced"):
            if name in options:  # given on loading: overrides what was saved, like any option
                settings[name] = options.pop(name)
        try:
            chat = cls(models, **settings, **merge_saved_options(saved["options"], options))
        except (TypeError, ValueError) as exc:
            cls(models, **settings, **options)  # the caller's own arguments are wrong: raise that as it is
            raise ValueError(f"Saved chat: 'options': {exc}") from None
        chat.set_history(saved["history"])
        chat._dropped.update(_saved_dropped(data.get("dropped"), saved["models"]))
        for entry in saved["ledger"]:
            chat._meter.record(entry)
        return chat

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_dict` as JSON to ``path``, atomically (a temporary file, then a rename). Returns the path."""
        return write_atomic(path, dumps(self.to_dict()))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: Any = None,
        **options: Any,
    ) -> Any:
        """A chat saved with `save`, ready to continue the conversation (see `from_dict`). A file that is not
        JSON, or not a saved chat, raises ``ValueError`` naming the file."""
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path} is not a saved chat: it is not JSON ({exc})") from None
        return cls.from_dict(data, api_key=api_key, base_url=base_url, http_client=http_client, **options)

    @classmethod
    def resume(
        cls,
        conversation: str | None = None,
        *,
        log: bool | str | os.PathLike[str] | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: Any = None,
        **options: Any,
    ) -> Any:
        """Go on with a conversation of the log (``None``: the most recent one; an id, or a unique start of one, as
        `irouter logs` lists them), multi-model ones included. ``log``: the log's file (default: ``IROUTER_LOG_PATH``,
        else the user data folder's ``irouter/logs.db``). The chat logs its next turns to the same conversation.
        Other arguments as for `from_dict` (the key is never in the log: ``api_key`` or ``OPENROUTER_API_KEY``).
        Raises ``KeyError`` when there is no such conversation, ``FileNotFoundError`` when there is no log."""
        from ._log import Log

        reader = Log(None if isinstance(log, bool) else log)
        data = reader.get(conversation)
        chat = cls.from_dict(data, api_key=api_key, base_url=base_url, http_client=http_client, **options)
        chat._log_path = reader.path
        chat._log_id = data["id"]
        chat._logged = {m: len(h) for m, h in chat._history.items()}
        chat._logged[""] = len(chat._meter.entries)
        return chat

    def fork(self: _C) -> _C:
        """An independent copy to branch the conversation: same models, endpoint, options and budgets; its own
        history and accounts (copied), so turns on one do not show in the other."""
        twin = copy.copy(self)  # new locks, its own endpoint (see ModelClient.__copy__)
        twin._history = copy.deepcopy(self._history)
        twin.defaults = dict(self.defaults)
        twin._meter = copy.copy(self._meter)  # a new lock too
        twin._meter.entries = list(self._meter.entries)
        twin._meter.holds = []
        twin._turn_options = dict(self._turn_options)
        twin._new_log_conversation()  # logged (if this chat is) as a conversation of its own
        twin._dropped = copy.deepcopy(getattr(self, "_dropped", {}))
        return twin

    # ------------------------------------------------------------------------------------------ notebooks
    def _summary(self) -> str:
        costs = [self._meter.cost(m) for m in self._models]
        known = [c for c in costs if c is not None]
        return summary(self._models, self.turns, self._meter.tokens(), sum(known) if known or not costs else None)

    def _repr_markdown_(self) -> str | None:
        """A one-model chat in a notebook: a summary line, then the conversation (tool steps marked)."""
        if len(self._models) > 1:
            return None  # shown side by side by _repr_html_
        return f"*{self._summary()}*\n\n" + conversation_markdown(self._history[self._models[0]])

    def _repr_html_(self) -> str | None:
        """A several-model chat in a notebook: the answers side by side, tool steps folded."""
        if len(self._models) == 1:
            return None
        return side_by_side_html(self._history, self._summary())

    def __repr__(self) -> str:
        tokens = self._meter.tokens()
        models = repr(self._models[0]) if len(self._models) == 1 else repr(self._models)
        return f"{type(self).__name__}({models}, turns={self.turns}, tokens={tokens})"

    def report(self, review: Any = None) -> Report:
        """The last turn as a comparison (`irouter.Report`): the answers side by side and an SVG chart of cost
        against latency per model, ranked and scored by ``review`` (a `Review`) when given. Shown inline in
        notebooks; ``.save("report.html")`` writes a self-contained page."""
        return Report.of(self, review=review)


class Chat(_Conversation, Generic[Answer]):
    """A conversation that keeps history and token usage, per model.

    >>> chat = Chat("openai/gpt-4o-mini", system="You are terse.")       # doctest: +SKIP
    >>> chat("Who created you?")                                         # doctest: +SKIP
    'OpenAI.'

    With a list of slugs every turn goes to all models at once, each with its own history; the return value,
    ``history`` and ``usage`` become ``{slug: ...}`` dicts. For type checkers ``Chat("a")`` is a ``Chat[str]``
    and ``Chat(["a", "b"])`` a ``Chat[dict[str, str]]``: they know what every call returns.

    Args (the first four may be positional, in irouter 0.3.1's order; the rest are keyword-only):
        model: a model slug (``"openai/gpt-4o-mini"``) or a list of slugs.
        system: the system prompt that starts every history; ``""`` or ``None`` for none.
        base_url: defaults to ``OPENROUTER_BASE_URL``, else ``https://openrouter.ai/api/v1``. Any
            OpenAI-compatible server works (no key needed for servers other than OpenRouter).
        api_key: the key; defaults to the ``OPENROUTER_API_KEY`` environment variable.
        max_cost: dollars the chat may spend: a cap, also for several models or threads at once. Before each
            request its worst case (estimated prompt, plus ``max_tokens`` or the model's longest answer, at the
            catalog's prices) is reserved; a request that might not fit is not sent (`BudgetExceeded`). Needs the
            model catalog (fetched once a day).
        max_total_tokens: tokens the chat may use, likewise.
        allow_unpriced: allow a budget on models whose worst case is unknown (no catalog price or answer
            length): their requests count only what they report after they end.
        http_client: an ``httpx2.Client`` of yours to send through (proxies, a custom CA, your own transport);
            ``httpx2.AsyncClient`` for `AsyncChat`. irouter never closes it. By default requests share irouter's
            pooled connections; `close` (or leaving ``with Chat(...) as chat:``) releases them.
        log: keep the conversation in the conversation log: ``True`` (the default file: ``IROUTER_LOG_PATH``,
            else ``logs.db`` in the user data folder), a file path, or ``False``. Not given: ``IROUTER_LOG=1`` turns
            it on. See `Chat.resume` and `irouter.Log`; the key is never logged.
        **defaults: options sent with every turn (``temperature``, ``max_tokens``, ``provider``, ``tools``,
            ``extra_body``, ``extra_headers``, ``timeout``, ``max_retries``, ``cache_responses``...); a turn's own
            keyword arguments override them. ``cache_responses=True`` answers a request identical to one already
            answered at ``temperature=0`` from the log's file, at no cost (``"always"``: at any temperature);
            ``cache_responses_ttl`` (seconds) ignores older answers.
    """

    if TYPE_CHECKING:  # the runtime constructor is the base class's; these say what it makes

        @overload
        def __init__(
            self: Chat[str],
            model: str,
            system: str | None = ...,
            base_url: str | None = ...,
            api_key: str | None = ...,
            *,
            max_cost: float | None = ...,
            max_total_tokens: int | None = ...,
            **defaults: Any,
        ) -> None: ...

        @overload
        def __init__(
            self: Chat[dict[str, str]],
            model: Models,
            system: str | None = ...,
            base_url: str | None = ...,
            api_key: str | None = ...,
            *,
            max_cost: float | None = ...,
            max_total_tokens: int | None = ...,
            **defaults: Any,
        ) -> None: ...

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    @overload
    def __call__(
        self: Chat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> str: ...

    @overload
    def __call__(
        self: Chat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> T: ...

    @overload
    def __call__(
        self: Chat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> Stream[str]: ...

    @overload
    def __call__(
        self: Chat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: bool,
        response_format: Body | None = ...,
        **options: Any,
    ) -> str | Stream[str]: ...

    @overload
    def __call__(
        self: Chat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> dict[str, str]: ...

    @overload
    def __call__(
        self: Chat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> dict[str, T]: ...

    @overload
    def __call__(
        self: Chat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> Stream[tuple[str, str]]: ...

    @overload
    def __call__(
        self: Chat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: bool,
        response_format: Body | None = ...,
        **options: Any,
    ) -> dict[str, str] | Stream[tuple[str, str]]: ...
    def __call__(self, message: Message, *args: Any, stream: bool = False, **options: Any) -> Any:
        """Send ``message`` to every model and return the reply text (``{slug: text}`` for several models).

        The signature is ``chat(message, tools=None, max_steps=None, extra_headers=None, extra_body=None, *,
        stream=False, **options)``: the four after the message may be positional (irouter 0.3.1's order).

        ``message`` is a string or a list of texts and content parts. Keyword arguments (``temperature``,
        ``max_tokens``, ``response_format``, ``provider``, ``models``, ``reasoning``, ``extra_body``,
        ``extra_headers``, ``timeout``...) apply to this turn only. The user message and the answer are added to
        a model's history only when its turn succeeds; a failed turn leaves that history as it was.

        Tools: ``tools=[f, g]`` lets the model call plain Python functions; irouter runs them (several calls of one
        step at once) and sends the results back until the model answers, at most ``max_steps`` (100) requests,
        then asks it to sum up. ``tool_choice`` and ``parallel_tool_calls`` pass through. ``before_tool(call)``
        sees each call before it runs (return ``False`` to refuse it, or a string to answer in its place) and
        ``after_tool(result)`` each result. Calls to tools given as schema dicts end the turn: they wait in
        `pending_tool_calls` for `answer_tool_calls`, and no new message is taken until then.

        Structured output: ``response_format=SomeModel`` (a pydantic model, dataclass or TypedDict, or a type such
        as ``list[SomeModel]`` or a union) returns a validated instance (history keeps the JSON text) or raises
        `StructuredOutputError` with the raw text.

        Streaming: ``stream=True`` returns a `Stream` at once (every model's request is already under way) that
        yields text as it arrives, ``(slug, piece)`` pairs for several models; tool steps stream too. When it
        ends, history and usage are what the non-streaming call leaves. Closing it early aborts the turn like
        Ctrl-C: no model sends another request or runs another tool, and every history stays as it was.
        """
        positional_options("Chat", CHAT_ARGS, args, options)
        check_not_running(self)
        user, plan, _ = self._prepare(message, options, stream=stream)
        if stream:
            return Stream(self._models, lambda emitter, ended: self._turn(user, plan, emitter, ended), plan.cancel)
        progress = Progress(self._models) if len(self._models) > 1 and in_notebook() else None
        return self._shape(self._turn(user, plan, None, progress.finished if progress else None))

    def _turn(self, user: dict[str, Any], plan: Plan, emitter: Emitter | None, ended: Ended | None) -> dict[str, Any]:
        """One call: every model's turn from ``user`` (see `_drive`)."""
        starts = {m: dict(user) for m in self._models}
        return self._drive(starts, dict.fromkeys(self._models, plan), plan.cancel, emitter, ended)

    def _drive(
        self,
        starts: dict[str, Any],
        plans: dict[str, Plan],
        cancel: CancelSignal,
        emitter: Emitter | None,
        ended: Ended | None,
    ) -> dict[str, Any]:
        """Takes the turn lock of every model in ``starts`` (in order), runs their turns at once from what
        ``starts`` gives each (a user message, or tool results), streamed to ``emitter``'s pieces or not, and
        commits them together (see `_commit`): a model that failed leaves its history as it was, the others'
        answers are kept (`MultiModelError`)."""
        models = list(starts)
        fits: dict[str, Fit] = {}

        def one(model: str) -> TurnResult:
            history, start, plan = self._history[model], starts[model], plans[model]
            fit = self._fit(model, history, start, plan)
            if fit is not None:
                fits[model], history = fit, fit.history
            if emitter is None:
                return self._run(model, history, start, plan)
            return self._run_streamed(model, history, start, plan, emitter(model))

        with running(self), ExitStack() as held:
            for model in models:
                held.enter_context(self._turn_locks[model])
            self._check_starts(starts)
            try:
                try:
                    results = fan_out(models, one, cancel, ended)
                except MultiModelError as exc:  # the others' answers are kept
                    exc.answers = self._commit(exc.answers, plans, cancel, fits)
                    raise
                return self._commit(results, plans, cancel, fits)
            finally:
                self._write_log()  # what was committed, and every billed request (a failed one too)

    def review(
        self,
        judge: str | Sequence[str],
        criteria: str | None = None,
        *,
        blind: bool = True,
        swap: bool = True,
        **options: Any,
    ) -> Review:
        """Have ``judge`` (a model slug, or a list of them: a panel, asked at once) score every model's last
        answer from 0 to 10 with a short reason, and rank the models; returns a `Review`.

        The judge gets the question and the answers labelled A, B, C... (``criteria``: what matters; by default
        correctness, then helpfulness). ``blind``: no model names, and competitors' slugs masked in the answers.
        ``swap``: each judge judges twice, the second time with the order reversed, against position bias. Scores
        are averaged per model over judges and passes; equal means share a rank. A judge's failure is a `Verdict`
        with an ``error``, not an exception: the other verdicts still count. A judge may be one of the chat's models.

        The judges' requests use the chat's endpoint, key and budgets, are recorded in `ledger` with
        ``purpose="review"`` (and in `cost`), and never join any history. ``options`` are request options for the
        judges (``temperature``, ``max_tokens``...; not the chat's defaults). Models whose last turn failed are left
        out; raises ``ValueError`` before any request when there is no answer to judge. See docs/compare.md.
        """
        from .review import review

        return review(self, judge, criteria, blind, swap, options)

    def synthesize(self, model: str, instructions: str | None = None, **options: Any) -> str:
        """Have ``model`` write one answer from every model's last answer (the "chairman"); returns its text.

        The model gets the question and the answers labelled A, B, C... (no model names), and ``instructions`` (by
        default: keep what is right, leave out what is wrong, answer the question itself). Nothing joins any
        history: `adopt` the text (``chat.adopt(text=...)``) to go on from it. The request is recorded like a
        judge's (``purpose="synthesize"``); errors raise as a turn's do."""
        from .review import synthesize

        return synthesize(self, model, instructions, options)

    def answer_tool_calls(self, results: Mapping[str, Any], **kwargs: Any) -> Any:
        """Send the results of the `pending_tool_calls` and go on with the turn; returns what the turn returns
        (the reply text, or the ``response_format`` instance).

        ``results`` maps each pending call's id to its result: a string as it is, an exception as
        ``"Error: ..."``, anything else as JSON (as for a tool's return value). Every pending call of a model
        must be answered at once. Several models: ``{slug: {call_id: result}}``, for the models to go on (the
        return value is ``{slug: text}`` for those). The turn goes on with its own options (tools, ``max_steps``,
        ``response_format``...); keyword arguments override them, and ``max_steps`` counts afresh. The model may
        call tools again, which leaves new pending calls. Raises before sending anything when an id is unknown or
        a pending call is left unanswered. No streaming here: the whole answer is returned.
        """
        check_not_running(self)
        answers, plans = self._answers(results, kwargs)
        return self._answered(self._drive(answers, plans, _one_signal(plans), None, None))


class AsyncChat(AsyncClosing, _Conversation, Generic[Answer]):
    """`Chat` for asyncio: ``await chat("...")``, ``async for piece in chat("...", stream=True)``.

    The same constructor, history, usage and shapes as `Chat` (``AsyncChat("a")`` is an ``AsyncChat[str]``, whose
    calls are coroutines of ``str``). Several models run as concurrent tasks; async tools are awaited and sync
    tools run in worker threads; ``async def`` hooks (``before_tool``, ``after_tool``) are awaited.
    """

    _awaits = True

    if TYPE_CHECKING:  # the runtime constructor is the base class's; these say what it makes

        @overload
        def __init__(
            self: AsyncChat[str],
            model: str,
            system: str | None = ...,
            base_url: str | None = ...,
            api_key: str | None = ...,
            *,
            max_cost: float | None = ...,
            max_total_tokens: int | None = ...,
            **defaults: Any,
        ) -> None: ...

        @overload
        def __init__(
            self: AsyncChat[dict[str, str]],
            model: Models,
            system: str | None = ...,
            base_url: str | None = ...,
            api_key: str | None = ...,
            *,
            max_cost: float | None = ...,
            max_total_tokens: int | None = ...,
            **defaults: Any,
        ) -> None: ...

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    def _turn_lock(self, model: str) -> Any:
        """One asyncio lock per model and event loop (an asyncio lock belongs to the loop it first ran on)."""
        import asyncio

        from ._transport import forget_closed_loops

        loop = asyncio.get_running_loop()
        locks = self._async_locks.get(loop)
        if locks is None:
            forget_closed_loops(self._async_locks)
            locks = self._async_locks[loop] = {m: asyncio.Lock() for m in self._models}
        return locks[model]

    @overload
    def __call__(
        self: AsyncChat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, str]: ...

    @overload
    def __call__(
        self: AsyncChat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(
        self: AsyncChat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> AsyncStream[str]: ...

    @overload
    def __call__(
        self: AsyncChat[str],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: bool,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, str] | AsyncStream[str]: ...

    @overload
    def __call__(
        self: AsyncChat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, str]]: ...

    @overload
    def __call__(
        self: AsyncChat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, T]]: ...

    @overload
    def __call__(
        self: AsyncChat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> AsyncStream[tuple[str, str]]: ...

    @overload
    def __call__(
        self: AsyncChat[dict[str, str]],
        message: Message,
        tools: Tools | None = ...,
        max_steps: int | None = ...,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        *,
        stream: bool,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, str]] | AsyncStream[tuple[str, str]]: ...
    def __call__(self, message: Message, *args: Any, stream: bool = False, **options: Any) -> Any:
        """Like `Chat.__call__` (the same positional order): returns a coroutine of the reply, or with
        ``stream=True`` an `AsyncStream` (to use with ``async for``; it must be created inside a running event
        loop)."""
        positional_options("AsyncChat", CHAT_ARGS, args, options)
        check_not_running(self)
        user, plan, pending = self._prepare(message, options, fetch=False, stream=stream)
        if stream:
            return AsyncStream(
                self._models, lambda emitter, ended: self._aturn(user, plan, pending, emitter, ended), plan.cancel
            )
        return self._acall(user, plan, pending)

    async def _acall(self, user: dict[str, Any], plan: Plan, pending: bool = False) -> Any:
        return self._shape(await self._aturn(user, plan, pending, None, None))

    async def _aturn(
        self, user: dict[str, Any], plan: Plan, pending: bool, emitter: Emitter | None, ended: Ended | None
    ) -> dict[str, Any]:
        """`Chat._turn`, awaited: the models run as tasks; a cancelled task (or Ctrl-C) keeps nothing."""
        await self._acheck_capabilities(user["content"], plan, pending)

        starts = {m: dict(user) for m in self._models}
        return await self._adrive(starts, dict.fromkeys(self._models, plan), plan.cancel, emitter, ended)

    async def _adrive(
        self,
        starts: dict[str, Any],
        plans: dict[str, Plan],
        cancel: CancelSignal,
        emitter: Emitter | None,
        ended: Ended | None,
    ) -> dict[str, Any]:
        """`Chat._drive`, awaited: the models run as tasks; a cancelled task (or Ctrl-C) keeps nothing."""
        models = list(starts)
        fits: dict[str, Fit] = {}

        async def one(model: str) -> TurnResult:
            history, start, plan = self._history[model], starts[model], plans[model]
            fit = await self._afit(model, history, start, plan)
            if fit is not None:
                fits[model], history = fit, fit.history
            if emitter is None:
                return await self._arun(model, history, start, plan)
            return await self._arun_streamed(model, history, start, plan, emitter(model))

        with running(self):
            async with AsyncExitStack() as held:
                for model in models:
                    await held.enter_async_context(self._turn_lock(model))
                self._check_starts(starts)
                try:
                    try:
                        results = await afan_out(models, one, cancel, ended)
                    except MultiModelError as exc:
                        exc.answers = self._commit(exc.answers, plans, cancel, fits)
                        raise
                    return self._commit(results, plans, cancel, fits)
                finally:
                    self._write_log()

    def review(
        self,
        judge: str | Sequence[str],
        criteria: str | None = None,
        *,
        blind: bool = True,
        swap: bool = True,
        **options: Any,
    ) -> Coroutine[Any, Any, Review]:
        """Like `Chat.review`, awaitable: ``review = await chat.review("judge/model")`` (arguments are checked at
        once; the judges' requests run as tasks)."""
        from .review import areview

        return areview(self, judge, criteria, blind, swap, options)  # type: ignore[no-any-return]

    def synthesize(self, model: str, instructions: str | None = None, **options: Any) -> Coroutine[Any, Any, str]:
        """Like `Chat.synthesize`, awaitable: ``text = await chat.synthesize("chair/model")``."""
        from .review import asynthesize

        return asynthesize(self, model, instructions, options)  # type: ignore[no-any-return]

    def answer_tool_calls(self, results: Mapping[str, Any], **kwargs: Any) -> Any:
        """Like `Chat.answer_tool_calls`, awaitable: ``await chat.answer_tool_calls({call_id: result})``."""
        check_not_running(self)
        answers, plans = self._answers(results, kwargs)
        return self._aanswer(answers, plans)

    async def _aanswer(self, answers: dict[str, list[dict[str, Any]]], plans: dict[str, Plan]) -> Any:
        return self._answered(await self._adrive(answers, plans, _one_signal(plans), None, None))


def _one_signal(plans: dict[str, Plan]) -> CancelSignal:
    """One cancel signal for a call whose models go on with plans of their own (`answer_tool_calls`)."""
    cancel = CancelSignal()
    for plan in plans.values():
        plan.cancel = cancel
    return cancel


def _log_file(log: Any) -> Path | None:
    """The file a chat logs to: ``log=True`` (or ``IROUTER_LOG=1`` when ``log`` is not given) the default one
    (``IROUTER_LOG_PATH``, else the user data folder's), a path that one, ``False``/``None`` none."""
    if log is None:
        log = env_switch("IROUTER_LOG")
    if log is False:
        return None
    if not isinstance(log, (bool, str, os.PathLike)):
        raise TypeError(f"log must be True, False or the path of a log file, got {type(log).__name__}")
    from ._log import log_path

    return log_path(log)


def _saved_dropped(dropped: Any, models: list[str]) -> dict[str, list[dict[str, Any]]]:
    """A saved chat's ``dropped`` messages (``{slug: messages}``), checked like history."""
    if dropped is None:
        return {}
    if not isinstance(dropped, Mapping) or any(m not in models for m in dropped):
        raise ValueError(f"Saved chat: 'dropped' must map models of the chat to message lists, got {dropped!r}")
    try:
        return {m: check_history(d, f"dropped[{m!r}]") for m, d in dropped.items()}
    except TypeError as exc:
        raise ValueError(f"Saved chat: {exc}") from None


def _saved_base_url(url: Any) -> str | None:
    """A saved base URL, or ``None`` when it is the default one now (OpenRouter, or ``OPENROUTER_BASE_URL``): then
    the loaded chat trusts it like a new chat would (the key from ``OPENROUTER_API_KEY``, attribution headers)."""
    from ._transport import resolve_base_url

    return None if not url or url == resolve_base_url(None) else str(url)
