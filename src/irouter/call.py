"""`Call` and `AsyncCall`: one-off requests to one model or several, without history; batches of them."""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

from . import _options as opts
from ._client import AsyncClosing, ModelClient, Plan
from ._compat import CALL_ARGS, positional_options
from ._content import is_message_list, to_content
from ._engine import TurnResult, afan_out, fan_out
from ._streams import AsyncStream, Emitter, Ended, Stream
from ._types import Answer, Body, Headers, Message, Models, T
from ._wire import Response, user_message

if TYPE_CHECKING:
    import os

    from .grid import AsyncGrid, Grid


class _OneOff(ModelClient):
    """What `Call` and `AsyncCall` share."""

    _place_new = opts.NEW_CALL

    def __init__(
        self,
        model: str | list[str] | tuple[str, ...],
        base_url: str | None = None,
        api_key: str | None = None,
        system: str | None = "",
        *,
        http_client: Any = None,
        **defaults: Any,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string, got {type(system).__name__}")
        super().__init__(model, api_key, base_url, defaults, http_client)
        self.system = system

    def _messages(self, message: Any) -> list[dict[str, Any]]:
        if is_message_list(message):
            return list(message)  # sent as they are (never modified)
        user = user_message(to_content(message))
        return [{"role": "system", "content": self.system}, user] if self.system else [user]

    def _grid(
        self,
        prompts: Sequence[Any],
        store: str | os.PathLike[str] | None,
        max_cost: float | None,
        concurrency: int,
        rpm: int | dict[str, int] | None,
        tpm: int | dict[str, int] | None,
        retry_failed: bool,
        force: bool,
        progress: bool | None,
        options: dict[str, Any],
        in_flight_budget: float | str | None = "auto",
    ) -> Any:
        from .grid import new_grid

        args = {"store": store, "max_cost": max_cost, "concurrency": concurrency, "rpm": rpm, "tpm": tpm}
        args.update(retry_failed=retry_failed, force=force, progress=progress, in_flight_budget=in_flight_budget)
        return new_grid(self, prompts, args, options)

    @staticmethod
    def _value(result: TurnResult, raw: bool) -> Any:
        return Response(result.reply.raw) if raw else result.value

    def __repr__(self) -> str:
        models = repr(self._models[0]) if len(self._models) == 1 else repr(self._models)
        return f"{type(self).__name__}({models})"


def _raw(options: dict[str, Any]) -> bool:
    """Take ``raw`` out of a call's options (it is irouter's, never sent)."""
    raw = options.pop("raw", False)
    if not isinstance(raw, bool):
        raise TypeError(f"raw must be True or False, got {raw!r}")
    return raw


def _check_batch(prompts: Any, concurrency: Any) -> list[Any]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError("prompts must be a list of messages (strings, content lists or message lists)")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
    return list(prompts)


class Call(_OneOff, Generic[Answer]):
    """Stateless calls: every call sends only what it is given.

    >>> ask = Call("openai/gpt-4o-mini")              # doctest: +SKIP
    >>> ask("Say hi")                                 # doctest: +SKIP
    'Hi!'

    Args (the first four may be positional, in irouter 0.3.1's order; the rest are keyword-only):
        model: a model slug or a list of slugs (several -> ``{slug: value}`` results, all requested at once).
        base_url, api_key: as for `Chat`.
        system: a system prompt put before string messages; ``""`` for none.
        http_client, **defaults: as for `Chat`.

    For type checkers ``Call("a")`` is a ``Call[str]`` and ``Call(["a", "b"])`` a ``Call[dict[str, str]]``.
    """

    if TYPE_CHECKING:  # the runtime constructor is the base class's; these say what it makes

        @overload
        def __init__(
            self: Call[str],
            model: str,
            base_url: str | None = ...,
            api_key: str | None = ...,
            system: str | None = ...,
            **defaults: Any,
        ) -> None: ...

        @overload
        def __init__(
            self: Call[dict[str, str]],
            model: Models,
            base_url: str | None = ...,
            api_key: str | None = ...,
            system: str | None = ...,
            **defaults: Any,
        ) -> None: ...

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    @overload
    def __call__(
        self: Call[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> str: ...

    @overload
    def __call__(
        self: Call[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> T: ...

    @overload
    def __call__(
        self: Call[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[True] = ...,
        *,
        stream: Literal[False] = ...,
        **options: Any,
    ) -> Response: ...

    @overload
    def __call__(
        self: Call[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> Stream[str]: ...

    @overload
    def __call__(
        self: Call[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: bool = ...,
        *,
        stream: bool = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> str | Response | Stream[str]: ...

    @overload
    def __call__(
        self: Call[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> dict[str, str]: ...

    @overload
    def __call__(
        self: Call[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> dict[str, T]: ...

    @overload
    def __call__(
        self: Call[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[True] = ...,
        *,
        stream: Literal[False] = ...,
        **options: Any,
    ) -> dict[str, Response]: ...

    @overload
    def __call__(
        self: Call[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> Stream[tuple[str, str]]: ...

    @overload
    def __call__(
        self: Call[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: bool = ...,
        *,
        stream: bool = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> dict[str, str | Response] | Stream[tuple[str, str]]: ...
    def __call__(self, message: Message, *args: Any, stream: bool = False, **options: Any) -> Any:
        """Send ``message`` and return the reply text, or with ``raw=True`` the whole response.

        The signature is ``ask(message, extra_headers=None, extra_body=None, raw=False, *, stream=False,
        **options)``: the three after the message may be positional (irouter 0.3.1's order).

        ``message`` is a string, a list of texts and content parts, or a list of message dicts
        (``[{'role': 'user', 'content': ...}]``) sent exactly as they are (no system prompt added). The raw
        response reads as attributes (``r.choices[0].message.content``, ``r.usage.cost``, ``r.provider``) and
        converts like the openai SDK's (``r.model_dump()``, ``r.to_json()``).
        ``tools=``, ``max_steps=`` and a typed ``response_format=`` work as for `Chat`; ``stream=True`` returns a
        `Stream` of text pieces.
        """
        raw = _raw(positional_options("Call", CALL_ARGS, args, options))
        messages = self._messages(message)
        plan = self._plan({**options, "raw": raw, "stream": stream}, opts.CALL)
        self._check_capabilities(messages[-1].get("content"), plan)
        if stream:
            return Stream(self._models, lambda emitter, ended: self._fan(messages, plan, emitter, ended), plan.cancel)

        def one(model: str) -> Any:
            return self._value(self._run(model, messages[:-1], messages[-1], plan), raw)

        return self._shape(fan_out(self._models, one, plan.cancel))

    def _fan(self, messages: list[dict[str, Any]], plan: Plan, emitter: Emitter, ended: Ended) -> dict[str, Any]:
        """Every model's streamed call at once (the work of a `Stream`)."""

        def one(model: str) -> Any:
            return self._run_streamed(model, messages[:-1], messages[-1], plan, emitter(model)).value

        return fan_out(self._models, one, plan.cancel, ended)

    @overload
    def batch(
        self: Call[str],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: Body | None = ...,
        **options: Any,
    ) -> list[str | Exception]: ...

    @overload
    def batch(
        self: Call[str],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: type[T],
        **options: Any,
    ) -> list[T | Exception]: ...

    @overload
    def batch(
        self: Call[dict[str, str]],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: Body | None = ...,
        **options: Any,
    ) -> list[dict[str, str | Exception]]: ...

    @overload
    def batch(
        self: Call[dict[str, str]],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: type[T],
        **options: Any,
    ) -> list[dict[str, T | Exception]]: ...

    def batch(self, prompts: Sequence[Message], concurrency: int = 8, **kwargs: Any) -> list[Any]:
        """Send many prompts (each to every model), at most ``concurrency`` requests at a time (fewer for a while
        after a rate limit). Runs on the grid engine (`Call.grid`) without a store.

        Returns one entry per prompt, in input order: what the call would return, or the exception it raised (a
        failure never loses the other results). With several models an entry is ``{slug: value or exception}``.
        """
        from .grid import abatch, run_sync

        items = [(self._messages(p), m) for p in _check_batch(prompts, concurrency) for m in self._models]
        plan = self._plan(kwargs, opts.BATCH)
        # the grid engine, without a store, on a background event loop; Ctrl-C: nothing more is sent
        flat = run_sync(lambda: abatch(self, items, plan, min(concurrency, max(1, len(items)))), plan.cancel)
        return _regroup(flat, self._models, self._shape)

    def grid(
        self,
        prompts: Sequence[Any],
        *,
        store: str | os.PathLike[str] | None = None,
        max_cost: float | None = None,
        concurrency: int = 64,
        rpm: int | dict[str, int] | None = None,
        tpm: int | dict[str, int] | None = None,
        retry_failed: bool = True,
        force: bool = False,
        progress: bool | None = None,
        in_flight_budget: float | str | None = "auto",
        **options: Any,
    ) -> Grid:
        """Every prompt to every model, as a `Grid` (see `irouter.grid`): nothing is sent until ``grid.run()``.

        Args:
            prompts: a list of prompts: strings, content-part lists, message lists, or rows
                ``{"id": ..., "prompt": ...}`` (ids default to the index; they must be unique).
            store: a SQLite file that keeps every cell's result: a second run sends only what is not done, and
                several processes may share it. ``None``: a private temporary file.
            max_cost: dollars this run may spend: a hard cap (each request's worst case is reserved before it is
                sent), and ``run()`` refuses up front when the forecast expects more (unless ``force=True``).
            concurrency: cells in flight at most (halved on rate limits, grown back as cells succeed).
            rpm, tpm: requests / tokens per minute per model on this side (a number for every model, or
                ``{slug: number}``).
            retry_failed: send again the cells that failed in an earlier run (``False``: return them as they were).
            force: run even when the forecast expects more than ``max_cost`` (the cap still holds).
            progress: a live line on a terminal's stderr (or a notebook display); ``None``: when there is one.
            in_flight_budget: dollars the requests in flight may reserve at once (each its worst case); a cell
                waits while more would be (OpenRouter refuses with a 402 past the account's balance). ``"auto"``:
                the account's remaining credits, read once when the run starts; ``None``: no such wait.
            **options: request options as for a call (``temperature``, ``max_tokens``, ``tools``,
                ``response_format=Model``...), over the ``Call``'s defaults. ``deferred=True`` sends the cells
                through OpenRouter's Batch API (about half price, within 24 hours; ``"mixed"``: the cells it
                refuses go the normal way; ``poll_interval=`` seconds before the first poll): see docs/batches.md.
        """
        return self._grid(  # type: ignore[no-any-return]
            prompts, store, max_cost, concurrency, rpm, tpm, retry_failed, force, progress, options, in_flight_budget
        )


class AsyncCall(AsyncClosing, _OneOff, Generic[Answer]):
    """`Call` for asyncio: ``await ask("...")``, ``async for piece in ask("...", stream=True)``, and
    ``await ask.batch(prompts, concurrency=64)``. The same constructor and positional order as `Call`; ``async def``
    hooks are awaited."""

    _awaits = True

    if TYPE_CHECKING:  # the runtime constructor is the base class's; these say what it makes

        @overload
        def __init__(
            self: AsyncCall[str],
            model: str,
            base_url: str | None = ...,
            api_key: str | None = ...,
            system: str | None = ...,
            **defaults: Any,
        ) -> None: ...

        @overload
        def __init__(
            self: AsyncCall[dict[str, str]],
            model: Models,
            base_url: str | None = ...,
            api_key: str | None = ...,
            system: str | None = ...,
            **defaults: Any,
        ) -> None: ...

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

    @overload
    def __call__(
        self: AsyncCall[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, str]: ...

    @overload
    def __call__(
        self: AsyncCall[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> Coroutine[Any, Any, T]: ...

    @overload
    def __call__(
        self: AsyncCall[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[True] = ...,
        *,
        stream: Literal[False] = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, Response]: ...

    @overload
    def __call__(
        self: AsyncCall[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> AsyncStream[str]: ...

    @overload
    def __call__(
        self: AsyncCall[str],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: bool = ...,
        *,
        stream: bool = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, str | Response] | AsyncStream[str]: ...

    @overload
    def __call__(
        self: AsyncCall[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, str]]: ...

    @overload
    def __call__(
        self: AsyncCall[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[False] = ...,
        response_format: type[T],
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, T]]: ...

    @overload
    def __call__(
        self: AsyncCall[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[True] = ...,
        *,
        stream: Literal[False] = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, Response]]: ...

    @overload
    def __call__(
        self: AsyncCall[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: Literal[False] = ...,
        *,
        stream: Literal[True],
        **options: Any,
    ) -> AsyncStream[tuple[str, str]]: ...

    @overload
    def __call__(
        self: AsyncCall[dict[str, str]],
        message: Message,
        extra_headers: Headers | None = ...,
        extra_body: Body | None = ...,
        raw: bool = ...,
        *,
        stream: bool = ...,
        response_format: Body | None = ...,
        **options: Any,
    ) -> Coroutine[Any, Any, dict[str, str | Response]] | AsyncStream[tuple[str, str]]: ...
    def __call__(self, message: Message, *args: Any, stream: bool = False, **options: Any) -> Any:
        """Like `Call.__call__` (the same positional order): a coroutine of the reply, or with ``stream=True`` an
        `AsyncStream`."""
        raw = _raw(positional_options("AsyncCall", CALL_ARGS, args, options))
        messages = self._messages(message)
        plan = self._plan({**options, "raw": raw, "stream": stream}, opts.CALL)
        pending = not self._check_capabilities(messages[-1].get("content"), plan, fetch=False)
        if stream:
            return AsyncStream(
                self._models, lambda emitter, ended: self._afan(messages, plan, pending, emitter, ended), plan.cancel
            )
        return self._acall(messages, plan, raw, pending)

    async def _acall(self, messages: list[dict[str, Any]], plan: Plan, raw: bool, pending: bool = False) -> Any:
        await self._acheck_capabilities(messages[-1].get("content"), plan, pending)

        async def one(model: str) -> Any:
            return self._value(await self._arun(model, messages[:-1], messages[-1], plan), raw)

        return self._shape(await afan_out(self._models, one, plan.cancel))

    async def _afan(
        self, messages: list[dict[str, Any]], plan: Plan, pending: bool, emitter: Emitter, ended: Ended
    ) -> dict[str, Any]:
        """`Call._fan`, awaited."""
        await self._acheck_capabilities(messages[-1].get("content"), plan, pending)

        async def one(model: str) -> Any:
            return (await self._arun_streamed(model, messages[:-1], messages[-1], plan, emitter(model))).value

        return await afan_out(self._models, one, plan.cancel, ended)

    @overload
    async def batch(
        self: AsyncCall[str],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: Body | None = ...,
        **options: Any,
    ) -> list[str | Exception]: ...

    @overload
    async def batch(
        self: AsyncCall[str],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: type[T],
        **options: Any,
    ) -> list[T | Exception]: ...

    @overload
    async def batch(
        self: AsyncCall[dict[str, str]],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: Body | None = ...,
        **options: Any,
    ) -> list[dict[str, str | Exception]]: ...

    @overload
    async def batch(
        self: AsyncCall[dict[str, str]],
        prompts: Sequence[Message],
        concurrency: int = ...,
        *,
        response_format: type[T],
        **options: Any,
    ) -> list[dict[str, T | Exception]]: ...

    async def batch(self, prompts: Sequence[Message], concurrency: int = 8, **kwargs: Any) -> list[Any]:
        """`Call.batch`, as tasks: at most ``concurrency`` requests in flight; results in input order, failures
        as exception objects in their place."""
        from .grid import abatch

        items = [(self._messages(p), m) for p in _check_batch(prompts, concurrency) for m in self._models]
        plan = self._plan(kwargs, opts.BATCH)
        return _regroup(await abatch(self, items, plan, concurrency), self._models, self._shape)

    def grid(
        self,
        prompts: Sequence[Any],
        *,
        store: str | os.PathLike[str] | None = None,
        max_cost: float | None = None,
        concurrency: int = 64,
        rpm: int | dict[str, int] | None = None,
        tpm: int | dict[str, int] | None = None,
        retry_failed: bool = True,
        force: bool = False,
        progress: bool | None = None,
        in_flight_budget: float | str | None = "auto",
        **options: Any,
    ) -> AsyncGrid:
        """`Call.grid` for asyncio: an `AsyncGrid`, run with ``async for cell in grid.run()``.

        Args:
            prompts: a list of prompts: strings, content-part lists, message lists, or rows
                ``{"id": ..., "prompt": ...}`` (ids default to the index; they must be unique).
            store: a SQLite file that keeps every cell's result: a second run sends only what is not done, and
                several processes may share it. ``None``: a private temporary file.
            max_cost: dollars this run may spend: a hard cap (each request's worst case is reserved before it is
                sent), and ``run()`` refuses up front when the forecast expects more (unless ``force=True``).
            concurrency: cells in flight at most (halved on rate limits, grown back as cells succeed).
            rpm, tpm: requests / tokens per minute per model on this side (a number for every model, or
                ``{slug: number}``).
            retry_failed: send again the cells that failed in an earlier run (``False``: return them as they were).
            force: run even when the forecast expects more than ``max_cost`` (the cap still holds).
            progress: a live line on a terminal's stderr (or a notebook display); ``None``: when there is one.
            in_flight_budget: dollars the requests in flight may reserve at once (each its worst case); a cell
                waits while more would be (OpenRouter refuses with a 402 past the account's balance). ``"auto"``:
                the account's remaining credits, read once when the run starts; ``None``: no such wait.
            **options: request options as for a call (``temperature``, ``max_tokens``, ``tools``,
                ``response_format=Model``...), over the ``Call``'s defaults. ``deferred=True`` sends the cells
                through OpenRouter's Batch API (about half price, within 24 hours; ``"mixed"``: the cells it
                refuses go the normal way; ``poll_interval=`` seconds before the first poll): see docs/batches.md.
        """
        return self._grid(  # type: ignore[no-any-return]
            prompts, store, max_cost, concurrency, rpm, tpm, retry_failed, force, progress, options, in_flight_budget
        )


def _regroup(flat: list[Any], models: list[str], shape: Any) -> list[Any]:
    """Flat (prompt x model) results back to one entry per prompt, shaped like a call's return value."""
    n = len(models)
    return [shape(dict(zip(models, flat[i : i + n], strict=True))) for i in range(0, len(flat), n)]
