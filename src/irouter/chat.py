"""`Chat` and `AsyncChat`: a conversation with one model or several at once, keeping each model's history and
token usage. The two share everything but how a turn is driven (threads or an event loop)."""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

from ._client import AsyncClosing, ModelClient, Plan
from ._content import to_content
from ._display import Progress, conversation_markdown, in_notebook, side_by_side_html, summary
from ._drivers import Recorder
from ._engine import FINAL_PROMPT, TurnResult, fan_out
from ._ledger import LedgerEntry, Meter, check_limit
from ._outputs import citations_in, images_in, last_reasoning
from ._persist import FORMAT, check_history, check_saved, dumps, jsonable_options, merge_saved_options, write_atomic
from ._streams import AsyncStream, Cancelled, Emit, Stream
from ._wire import user_message
from .catalog import cached_records, find

DEFAULT_SYSTEM = "You are a helpful assistant."


class _Conversation(ModelClient):
    """What `Chat` and `AsyncChat` share: per-model histories, the accounts, saving, display. See `Chat`."""

    def __init__(
        self,
        model: str | list[str],
        system: str | None = DEFAULT_SYSTEM,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_cost: float | None = None,
        max_total_tokens: int | None = None,
        http_client: Any = None,
        **defaults: Any,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string, got {type(system).__name__}")
        super().__init__(model, api_key, base_url, defaults, http_client)
        self._meter = Meter(max_cost, max_total_tokens, self._estimate)
        self.system = system
        self._new_locks()
        self._history: dict[str, list[dict[str, Any]]] = {m: self._start() for m in self._models}

    def _new_locks(self) -> None:
        """Locks belong to one object and one process: made here, and anew for copies and unpickled chats."""
        self._locks = {m: threading.RLock() for m in self._models}
        """Guard history and usage changes (short)."""
        self._turn_locks = {m: threading.RLock() for m in self._models}
        """Held for a whole sync turn: turns on one model never interleave."""
        self._async_locks: dict[Any, dict[str, Any]] = {}
        """The same for async turns: per event loop, one asyncio lock per model (closed loops are dropped)."""

    def _state(self) -> dict[str, Any]:
        state = super()._state()
        for name in ("_locks", "_turn_locks", "_async_locks"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._new_locks()

    def _start(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def _prepare(self, message: Any, kwargs: dict[str, Any], fetch: bool = True) -> tuple[dict[str, Any], Plan, bool]:
        """Check everything and build the user message, before any request."""
        user, plan = user_message(to_content(message)), self._plan(kwargs)
        pending = not self._check_capabilities(user["content"], plan, fetch)
        return user, plan, pending

    def _recorder(self, model: str) -> Recorder:
        return Recorder(self._meter, model)

    def _estimate(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars at the catalog's prices, when the catalog is at hand (never fetched for this)."""
        records = cached_records(self.base_url)
        info = find(records, model) if records else None
        return info.cost(prompt_tokens, completion_tokens) if info else None

    def _commit(
        self, model: str, history: list[dict[str, Any]], result: TurnResult, cancel: threading.Event | None = None
    ) -> Any:
        """A finished turn joins the history it started from, unless the call was interrupted meanwhile."""
        with self._locks[model]:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            history.extend(result.messages)
        return result.value

    @property
    def history(self) -> Any:
        """The messages so far (OpenAI format, plain dicts): a list for one model, ``{slug: list}`` for several."""
        return self._shape(self._history)

    @property
    def usage(self) -> Any:
        """Tokens used so far, summed over every request: ``{'prompt_tokens', 'completion_tokens',
        'total_tokens'}`` for one model, ``{slug: that}`` for several."""
        return self._shape({m: self._meter.usage(m) for m in self._models})

    @property
    def cost(self) -> Any:
        """Dollars spent so far, as the server reported them (OpenRouter's ``usage.cost``): a number, or
        ``{slug: number}`` for several models. ``None`` for a model whose server reports no cost (see
        `estimated_cost`). Reset by `reset_usage`."""
        return self._shape({m: self._meter.cost(m) for m in self._models})

    @property
    def estimated_cost(self) -> Any:
        """`cost`, with the catalog's prices filling in for requests whose server reported no cost (an estimate:
        ``None`` when neither is known)."""
        return self._shape({m: self._meter.cost(m, estimated=True) for m in self._models})

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
        self._meter.max_cost = check_limit("max_cost", value)

    @property
    def max_total_tokens(self) -> int | None:
        """Tokens this chat may use (``None``: no limit). Requests stop with `BudgetExceeded` once reached."""
        return self._meter.max_total_tokens  # type: ignore[no-any-return]

    @max_total_tokens.setter
    def max_total_tokens(self, value: int | None) -> None:
        self._meter.max_total_tokens = check_limit("max_total_tokens", value)

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
            "history": {m: [dict(msg) for msg in h] for m, h in self._history.items()},
            "usage": {m: self._meter.usage(m) for m in self._models},
            "cost": {m: self._meter.cost(m) for m in self._models},
            "ledger": [entry.to_dict() for entry in self._meter.entries],
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
        for a new chat; ``base_url`` and ``options`` override what was saved, except ``extra_headers``, which
        add to the saved ones (give the secret headers the file left out again this way).

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
            "http_client": http_client,
        }
        try:
            chat = cls(models, **settings, **merge_saved_options(saved["options"], options))
        except (TypeError, ValueError) as exc:
            cls(models, **settings, **options)  # the caller's own arguments are wrong: raise that as it is
            raise ValueError(f"Saved chat: 'options': {exc}") from None
        chat.set_history(saved["history"])
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

    def fork(self) -> Any:
        """An independent copy to branch the conversation: same models, endpoint, options and budgets; its own
        history and accounts (copied), so turns on one do not show in the other."""
        twin = copy.copy(self)  # new locks, its own endpoint (see ModelClient.__copy__)
        twin._history = copy.deepcopy(self._history)
        twin.defaults = dict(self.defaults)
        twin._meter = copy.copy(self._meter)  # a new lock too
        twin._meter.entries = list(self._meter.entries)
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


class Chat(_Conversation):
    """A conversation that keeps history and token usage, per model.

    >>> chat = Chat("openai/gpt-4o-mini", system="You are terse.")       # doctest: +SKIP
    >>> chat("Who created you?")                                         # doctest: +SKIP
    'OpenAI.'

    With a list of slugs every turn goes to all models at once, each with its own history; the return value,
    ``history`` and ``usage`` become ``{slug: ...}`` dicts.

    Args:
        model: a model slug (``"openai/gpt-4o-mini"``) or a list of slugs.
        system: the system prompt that starts every history; ``""`` or ``None`` for none.
        api_key: the key; defaults to the ``OPENROUTER_API_KEY`` environment variable.
        base_url: defaults to ``OPENROUTER_BASE_URL``, else ``https://openrouter.ai/api/v1``. Any
            OpenAI-compatible server works (no key needed for servers other than OpenRouter).
        max_cost: dollars the chat may spend; requests stop with `BudgetExceeded` once reached.
        max_total_tokens: tokens the chat may use, likewise.
        http_client: an ``httpx2.Client`` of yours to send through (proxies, a custom CA, your own transport);
            ``httpx2.AsyncClient`` for `AsyncChat`. irouter never closes it. By default requests share irouter's
            pooled connections; `close` (or leaving ``with Chat(...) as chat:``) releases them.
        **defaults: options sent with every turn (``temperature``, ``max_tokens``, ``provider``, ``tools``,
            ``extra_body``, ``extra_headers``, ``timeout``, ``max_retries``...); a turn's own keyword arguments
            override them.
    """

    @overload
    def __call__(self, message: str | list[Any], stream: Literal[False] = False, **kwargs: Any) -> Any: ...

    @overload
    def __call__(self, message: str | list[Any], stream: Literal[True], **kwargs: Any) -> Stream: ...

    def __call__(self, message: str | list[Any], stream: bool = False, **kwargs: Any) -> Any:
        """Send ``message`` to every model and return the reply text (``{slug: text}`` for several models).

        ``message`` is a string or a list of texts and content parts. Keyword arguments (``temperature``,
        ``max_tokens``, ``response_format``, ``provider``, ``models``, ``reasoning``, ``extra_body``,
        ``extra_headers``, ``timeout``...) apply to this turn only. The user message and the answer are added to
        a model's history only when its turn succeeds; a failed turn leaves that history as it was.

        Tools: ``tools=[f, g]`` lets the model call plain Python functions; irouter runs them (several calls of one
        step at once) and sends the results back until the model answers, at most ``max_steps`` (100) requests,
        then asks it to sum up. ``tool_choice`` and ``parallel_tool_calls`` pass through. ``before_tool(call)``
        sees each call before it runs (return ``False`` to refuse it, or a string to answer in its place) and
        ``after_tool(result)`` each result.

        Structured output: ``response_format=SomeModel`` (a pydantic model, dataclass or TypedDict) returns a
        validated instance (history keeps the JSON text) or raises `StructuredOutputError` with the raw text.

        Streaming: ``stream=True`` returns a `Stream` at once (every model's request is already under way) that
        yields text as it arrives, ``(slug, piece)`` pairs for several models; tool steps stream too. When it
        ends, history and usage are what the non-streaming call leaves. Closing it early cancels the turns still
        running: their histories stay as they were.
        """
        user, plan, _ = self._prepare(message, kwargs)
        if stream:
            return Stream(self._models, lambda model, cancel, emit: self._streamed(model, user, plan, cancel, emit))

        cancel = threading.Event()

        def turn(model: str) -> Any:
            with self._turn_locks[model]:
                history = self._history[model]
                return self._commit(model, history, self._run(model, history, dict(user), plan), cancel)

        progress = Progress(self._models) if len(self._models) > 1 and in_notebook() else None
        return self._shape(fan_out(self._models, turn, cancel, progress.finished if progress else None))

    def _streamed(self, model: str, user: dict[str, Any], plan: Plan, cancel: threading.Event, emit: Emit) -> Any:
        with self._turn_locks[model]:
            history = self._history[model]
            result = self._run_streamed(model, history, dict(user), plan, cancel, emit)
            return self._commit(model, history, result, cancel)


class AsyncChat(AsyncClosing, _Conversation):
    """`Chat` for asyncio: ``await chat("...")``, ``async for piece in chat("...", stream=True)``.

    The same constructor, history, usage and shapes as `Chat`. Several models run as concurrent tasks; async tools
    are awaited and sync tools run in worker threads.
    """

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
    def __call__(self, message: str | list[Any], stream: Literal[False] = False, **kwargs: Any) -> Any: ...

    @overload
    def __call__(self, message: str | list[Any], stream: Literal[True], **kwargs: Any) -> AsyncStream: ...

    def __call__(self, message: str | list[Any], stream: bool = False, **kwargs: Any) -> Any:
        """Like `Chat.__call__`: returns an awaitable of the reply, or with ``stream=True`` an `AsyncStream` (to
        use with ``async for``; it must be created inside a running event loop)."""
        user, plan, pending = self._prepare(message, kwargs, fetch=False)
        if stream:
            return AsyncStream(self._models, lambda model, emit: self._astreamed(model, user, plan, emit, pending))
        return self._acall(user, plan, pending)

    async def _acall(self, user: dict[str, Any], plan: Plan, pending: bool = False) -> Any:
        import asyncio

        await self._acheck_capabilities(user["content"], plan, pending)

        async def turn(model: str) -> Any:
            async with self._turn_lock(model):
                history = self._history[model]
                result = await self._arun(model, history, dict(user), plan)
                return self._commit(model, history, result)

        outcomes = await asyncio.gather(*(turn(m) for m in self._models), return_exceptions=True)
        return self._shape(gathered(self._models, outcomes))

    async def _astreamed(self, model: str, user: dict[str, Any], plan: Plan, emit: Emit, pending: bool) -> Any:
        await self._acheck_capabilities(user["content"], plan, pending)
        async with self._turn_lock(model):
            history = self._history[model]
            result = await self._arun_streamed(model, history, dict(user), plan, emit)
            return self._commit(model, history, result)


def _saved_base_url(url: Any) -> str | None:
    """A saved base URL, or ``None`` when it is the default one now (OpenRouter, or ``OPENROUTER_BASE_URL``): then
    the loaded chat trusts it like a new chat would (the key from ``OPENROUTER_API_KEY``, attribution headers)."""
    from ._transport import resolve_base_url

    return None if not url or url == resolve_base_url(None) else str(url)


def gathered(models: list[str], outcomes: list[Any]) -> dict[str, Any]:
    """``asyncio.gather(..., return_exceptions=True)`` results as ``{model: value}``; failures raise like
    `fan_out`: one model's error as is, several models' as `MultiModelError` with the answers that arrived."""
    from .errors import MultiModelError

    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome  # Ctrl-C, cancellation: not a model's failure
    errors = {m: o for m, o in zip(models, outcomes, strict=True) if isinstance(o, Exception)}
    values = {m: o for m, o in zip(models, outcomes, strict=True) if not isinstance(o, Exception)}
    if errors and len(models) == 1:
        raise errors[models[0]]
    if errors:
        raise MultiModelError(values, errors)
    return values
