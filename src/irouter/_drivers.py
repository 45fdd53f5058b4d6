"""The I/O drivers of a turn engine: sync or async, whole answers or streams. They decide nothing.

Each driver runs a `chat_turn` engine to its end, doing each `Send` (a request) and each `RunTools` (tool calls)
the engine asks for. The streaming drivers also hand every piece of text to the caller as it arrives, and build
the same `Reply` the non-streaming path would have parsed, through `StreamAccumulator`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from . import _retry as retry
from ._caching import ttl_of
from ._cancel import CancelSignal, results_in_order
from ._engine import Engine, RunTools, Send, TurnResult
from ._ledger import Hold, LedgerEntry, Meter, entry_for
from ._retry import RetryPolicy
from ._wire import Reply, StreamAccumulator
from .errors import APIConnectionError, APIError
from .tools import AfterTool, BeforeTool, Toolbox, ToolCall, ToolResult, arun_call, run_call, tool_message

if TYPE_CHECKING:
    from ._log import ResponseCache

Chunks = Iterator[dict[str, Any]]


@dataclass
class ToolRunner:
    """How tool calls of a turn run: the tools, the hooks, and the call's cancel signal (checked before each tool
    starts)."""

    toolbox: Toolbox | None
    before: BeforeTool | None = None
    after: AfterTool | None = None
    cancel: CancelSignal = field(default_factory=CancelSignal)

    def run(self, action: RunTools) -> list[dict[str, Any]]:
        """Run one step's calls at once (a thread each) and return the tool messages in the model's order."""
        assert self.toolbox is not None  # the engine asks for tools only when there are some
        toolbox, calls = self.toolbox, action.calls

        def one(call: ToolCall) -> ToolResult:
            self.cancel.check()
            return run_call(call, toolbox, self.before, self.after)

        if len(calls) == 1:
            results = [one(calls[0])]
        else:
            import contextvars
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="irouter-tool")
            try:
                results = results_in_order([pool.submit(contextvars.copy_context().run, one, c) for c in calls])
            finally:  # after Ctrl-C, do not wait for the step's other tools to finish
                pool.shutdown(wait=False, cancel_futures=True)
        return [tool_message(r) for r in results]

    async def arun(self, action: RunTools) -> list[dict[str, Any]]:
        """`run`, awaited: async tools are awaited together, sync ones run in worker threads."""
        import asyncio

        assert self.toolbox is not None
        toolbox = self.toolbox

        async def one(call: ToolCall) -> ToolResult:
            self.cancel.check()
            return await arun_call(call, toolbox, self.before, self.after)

        results = await asyncio.gather(*(one(c) for c in action.calls))
        return [tool_message(r) for r in results]


@dataclass
class Ticket:
    """One request under way: when it started, and what it holds against the budgets."""

    started: float
    """``time.monotonic()`` when it was sent."""
    wall: float
    """``time.time()`` when it was sent."""
    hold: Hold | None = None
    body: dict[str, Any] | None = None
    """The request, when its answer is to be kept in the response cache."""
    cache_ttl: str | None = None
    """The TTL of the body's cache breakpoints (``"1h"``, or ``None`` for the default), to price its writes."""


@dataclass
class Recorder:
    """Where one model's requests are accounted: the worst case reserved before, the ledger entry written after."""

    meter: Meter
    model: str
    purpose: str | None = None
    """What the requests are for when they are not turns of the chat (see `LedgerEntry.purpose`)."""
    kept: list[LedgerEntry] | None = None
    """Also gets every entry written (a review's own cost and latency)."""
    cache: ResponseCache | None = None
    """The response cache (``cache_responses=True``): consulted before each request, given each answer."""
    fallback_for: str | None = None
    """The slug whose turn this model answers as a fallback (``None``: its own turn)."""
    stored: tuple[str, dict[str, Any]] | None = None
    """The last request whose answer went into (or came from) the response cache, as ``(model, body)``."""

    def unstore(self) -> None:
        """Take the last cached answer out of the response cache: it failed its turn (it does not fit
        ``response_format``), so it would fail the same way every time it was served."""
        if self.stored is not None and self.cache is not None:
            self.cache.forget(*self.stored)
        self.stored = None

    def instead(self, slug: str) -> Recorder:
        """Where the requests of ``slug`` go when it takes this recorder's turn (itself, for its own model)."""
        if slug == self.model:
            return self
        return replace(self, model=slug, fallback_for=self.fallback_for or self.model, stored=None)

    def failed(self, exc: BaseException) -> None:
        """This model's turn failed and goes to the next fallback: the ledger notes the attempt (nothing billed)."""
        now = time.time()
        entry = entry_for(
            self.model,
            None,
            None,
            started=time.monotonic(),
            wall_started=now,
            ttft=None,
            step=0,
            streamed=False,
            purpose=self.purpose,
            fallback_for=self.fallback_for,
        )
        self.meter.record(replace(entry, cost=0.0, latency=0.0, error=f"{type(exc).__name__}: {exc}"))

    def start(self, body: dict[str, Any]) -> Ticket:
        """Reserve the request's worst case against the budgets (raises `BudgetExceeded`) and note the time."""
        hold = self.meter.reserve(self.model, body)
        body_kept = body if self.cache is not None else None
        return Ticket(time.monotonic(), time.time(), hold, body=body_kept, cache_ttl=ttl_of(body))

    def cached(self, body: dict[str, Any], step: int, streamed: bool = False) -> Reply | None:
        """The response cache's answer to ``body`` (``None``: send it), recorded in the ledger as cached (no
        tokens, no cost). Called before `start`: an answer from the cache reserves nothing."""
        if self.cache is None:
            return None
        reply = self.cache.get(self.model, body)
        if reply is not None:
            from ._log import cached_entry

            self.stored = (self.model, body)
            now = time.monotonic()
            entry = entry_for(
                self.model,
                reply.usage,
                reply,
                started=now,
                wall_started=time.time(),
                ttft=None,
                step=step,
                streamed=streamed,
                purpose=self.purpose,
                fallback_for=self.fallback_for,
            )
            entry = cached_entry(entry)
            self.meter.record(entry)
            if self.kept is not None:
                self.kept.append(entry)
        return reply

    def done(
        self,
        reply: Reply | None,
        usage: dict[str, Any] | None,
        ticket: Ticket,
        step: int,
        ttft: float | None = None,
        streamed: bool = False,
    ) -> None:
        """The request ended: its reservation gives way to what it used (nothing, when it was not billed)."""
        entry = None
        if reply is not None or usage:
            entry = entry_for(
                self.model,
                usage,
                reply,
                started=ticket.started,
                wall_started=ticket.wall,
                ttft=ttft,
                step=step,
                streamed=streamed,
                price=self.meter.price,
                purpose=self.purpose,
                fallback_for=self.fallback_for,
                saving=partial(self.meter.saving, self.model, ttl=ticket.cache_ttl),
            )
            if self.kept is not None:
                self.kept.append(entry)
        self.meter.settle(ticket.hold, entry)
        if reply is not None and ticket.body is not None and self.cache is not None:
            self.cache.put(self.model, ticket.body, reply)
            self.stored = (self.model, ticket.body)


def _fail(engine: Engine, exc: BaseException) -> NoReturn:
    """End the turn with ``exc``, through the engine (it notes what the turn had, e.g. on `BudgetExceeded`)."""
    engine.throw(exc)
    raise exc  # only reached if the engine swallowed it


def run_sync(engine: Engine, send: Callable[[Send], Reply], tools: ToolRunner) -> TurnResult:
    """Drive an engine to its end, one whole answer per request; stops before the next request or tool step once
    the call is cancelled (``tools.cancel``)."""
    action: Send | RunTools = next(engine)
    while True:
        try:
            tools.cancel.check()
            outcome = send(action) if isinstance(action, Send) else tools.run(action)
        except Exception as exc:
            _fail(engine, exc)
        try:
            action = engine.send(outcome)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


async def run_async(engine: Engine, send: Callable[[Send], Awaitable[Reply]], tools: ToolRunner) -> TurnResult:
    """`run_sync`, awaited."""
    action: Send | RunTools = next(engine)
    while True:
        try:
            tools.cancel.check()
            outcome = await send(action) if isinstance(action, Send) else await tools.arun(action)
        except Exception as exc:
            _fail(engine, exc)
        try:
            action = engine.send(outcome)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


class StreamedTurn:
    """The result box of a streamed turn: filled when the stream ends (generators cannot return to a for loop)."""

    result: TurnResult | None = None


def _attempt(
    open_stream: Callable[[Send], Chunks], action: Send, recorder: Recorder, out: list[Reply]
) -> Iterator[str]:
    """One attempt at a streamed request: its text pieces; the `Reply` goes to ``out`` when it is complete.
    A failure carries what had arrived (``.partial_text``, ``.usage``); billed usage is recorded either way."""
    hit = recorder.cached(action.body, action.step, streamed=True)
    if hit is not None:  # the answer as it was, in one piece
        yield from [hit.content] if hit.content else []
        out.append(hit)
        return
    acc, ttft = StreamAccumulator(recorder.model), None
    ticket = recorder.start(action.body)
    settled = False
    try:
        for chunk in open_stream(action):
            piece = acc.add(chunk)
            if piece:
                ttft = ttft if ttft is not None else time.monotonic() - ticket.started
                yield piece
        out.append(_reply(acc, recorder, ticket, action.step, ttft))
        settled = True
    except APIError as exc:
        acc.failure(exc)
        raise
    finally:
        if not settled:
            recorder.done(None, acc.usage, ticket, action.step, ttft, streamed=True)


async def _aattempt(
    open_stream: Callable[[Send], AsyncIterator[dict[str, Any]]], action: Send, recorder: Recorder, out: list[Reply]
) -> AsyncGenerator[str, None]:
    """`_attempt`, as an async generator."""
    hit = recorder.cached(action.body, action.step, streamed=True)
    if hit is not None:
        if hit.content:
            yield hit.content
        out.append(hit)
        return
    acc, ttft = StreamAccumulator(recorder.model), None
    ticket = recorder.start(action.body)
    settled = False
    try:
        async for chunk in open_stream(action):
            piece = acc.add(chunk)
            if piece:
                ttft = ttft if ttft is not None else time.monotonic() - ticket.started
                yield piece
        out.append(_reply(acc, recorder, ticket, action.step, ttft))
        settled = True
    except APIError as exc:
        acc.failure(exc)
        raise
    finally:
        if not settled:
            recorder.done(None, acc.usage, ticket, action.step, ttft, streamed=True)


def _reply(acc: StreamAccumulator, recorder: Recorder, ticket: Ticket, step: int, ttft: float | None) -> Reply:
    if not acc.complete:
        raise APIConnectionError("The stream ended before the answer was complete", model=acc.model)
    reply = acc.reply()
    recorder.done(reply, reply.usage, ticket, step, ttft, streamed=True)
    return reply


def stream_sync(
    engine: Engine,
    open_stream: Callable[[Send], Chunks],
    tools: ToolRunner,
    recorder: Recorder,
    box: StreamedTurn,
    policy: RetryPolicy,
    pause: Callable[[float], Any] = time.sleep,
) -> Generator[str, None, None]:
    """Drive an engine, yielding each piece of text as it arrives; ``box.result`` is set at the end.

    Each request is retried by ``policy`` (`_retry.stream`) while none of its text was handed out: a failure
    inside the stream (an error chunk, a dropped connection) counts like a failed request. After that it raises
    irouter's error with ``.partial_text``. ``pause`` sleeps between attempts (returning ``True`` cancels).
    """
    action: Send | RunTools = next(engine)
    while True:
        if isinstance(action, Send):
            out: list[Reply] = []
            try:
                tools.cancel.check()
                yield from retry.stream(partial(_attempt, open_stream, action, recorder, out), policy, pause)
            except Exception as exc:
                _fail(engine, exc)
            outcome: Any = out[-1]
        else:
            tools.cancel.check()
            outcome = tools.run(action)
        try:
            action = engine.send(outcome)
        except StopIteration as stop:
            box.result = stop.value
            return


async def stream_async(
    engine: Engine,
    open_stream: Callable[[Send], AsyncIterator[dict[str, Any]]],
    tools: ToolRunner,
    recorder: Recorder,
    box: StreamedTurn,
    policy: RetryPolicy,
) -> AsyncGenerator[str, None]:
    """`stream_sync`, as an async generator."""
    action: Send | RunTools = next(engine)
    while True:
        if isinstance(action, Send):
            out: list[Reply] = []
            pieces = retry.astream(partial(_aattempt, open_stream, action, recorder, out), policy)
            try:
                tools.cancel.check()
                async for piece in pieces:
                    yield piece
            except Exception as exc:
                _fail(engine, exc)
            finally:
                await pieces.aclose()
            outcome: Any = out[-1]
        else:
            tools.cancel.check()
            outcome = await tools.arun(action)
        try:
            action = engine.send(outcome)
        except StopIteration as stop:
            box.result = stop.value
            return
