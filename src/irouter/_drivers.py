"""The I/O drivers of a turn engine: sync or async, whole answers or streams. They decide nothing.

Each driver runs a `chat_turn` engine to its end, doing each `Send` (a request) and each `RunTools` (tool calls)
the engine asks for. The streaming drivers also hand every piece of text to the caller as it arrives, and build
the same `Reply` the non-streaming path would have parsed, through `StreamAccumulator`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from ._engine import Engine, RunTools, Send, TurnResult
from ._wire import Reply, StreamAccumulator
from .errors import APIConnectionError, APIError
from .tools import AfterTool, BeforeTool, Toolbox, arun_call, run_call, tool_message

Chunks = Iterator[dict[str, Any]]
UsageSink = Callable[["dict[str, Any] | None"], None]


@dataclass
class ToolRunner:
    """How tool calls of a turn run: the tools and the hooks."""

    toolbox: Toolbox | None
    before: BeforeTool | None = None
    after: AfterTool | None = None

    def run(self, action: RunTools) -> list[dict[str, Any]]:
        """Run one step's calls at once (a thread each) and return the tool messages in the model's order."""
        assert self.toolbox is not None  # the engine asks for tools only when there are some
        toolbox, calls = self.toolbox, action.calls
        if len(calls) == 1:
            results = [run_call(calls[0], toolbox, self.before, self.after)]
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="irouter-tool") as pool:
                results = list(pool.map(lambda c: run_call(c, toolbox, self.before, self.after), calls))
        return [tool_message(r) for r in results]

    async def arun(self, action: RunTools) -> list[dict[str, Any]]:
        """`run`, awaited: async tools are awaited together, sync ones run in worker threads."""
        import asyncio

        assert self.toolbox is not None
        toolbox = self.toolbox
        results = await asyncio.gather(*(arun_call(c, toolbox, self.before, self.after) for c in action.calls))
        return [tool_message(r) for r in results]


def _finished(engine: Engine, outcome: Any) -> tuple[Send | RunTools | None, TurnResult | None]:
    try:
        return engine.send(outcome), None
    except StopIteration as stop:
        return None, stop.value


def run_sync(engine: Engine, send: Callable[[Send], Reply], tools: ToolRunner) -> TurnResult:
    """Drive an engine to its end, one whole answer per request."""
    action: Send | RunTools | None = next(engine)
    while True:
        outcome = send(action) if isinstance(action, Send) else tools.run(action)  # type: ignore[arg-type]
        action, result = _finished(engine, outcome)
        if result is not None:
            return result


async def run_async(engine: Engine, send: Callable[[Send], Awaitable[Reply]], tools: ToolRunner) -> TurnResult:
    """`run_sync`, awaited."""
    action: Send | RunTools | None = next(engine)
    while True:
        outcome = await send(action) if isinstance(action, Send) else await tools.arun(action)  # type: ignore[arg-type]
        action, result = _finished(engine, outcome)
        if result is not None:
            return result


class StreamedTurn:
    """The result box of a streamed turn: filled when the stream ends (generators cannot return to a for loop)."""

    result: TurnResult | None = None


def _reply(acc: StreamAccumulator, usage: UsageSink) -> Reply:
    if acc.finish_reason is None:
        usage(acc.usage)
        raise acc.failure(APIConnectionError("The stream ended before the answer was complete", model=acc.model))
    reply = acc.reply()
    usage(reply.usage)
    return reply


def stream_sync(
    engine: Engine,
    model: str,
    open_stream: Callable[[Send], Chunks],
    tools: ToolRunner,
    usage: UsageSink,
    box: StreamedTurn,
) -> Generator[str, None, None]:
    """Drive an engine, yielding each piece of text as it arrives; ``box.result`` is set at the end.

    A failure mid-stream raises irouter's error with ``.partial_text`` (and records any usage it carried).
    """
    action: Send | RunTools | None = next(engine)
    while True:
        if isinstance(action, Send):
            acc = StreamAccumulator(model)
            try:
                for chunk in open_stream(action):
                    piece = acc.add(chunk)
                    if piece:
                        yield piece
            except APIError as exc:
                usage(acc.usage)
                raise acc.failure(exc) from None
            outcome: Any = _reply(acc, usage)
        else:
            outcome = tools.run(action)  # type: ignore[arg-type]
        action, box.result = _finished(engine, outcome)
        if box.result is not None:
            return


async def stream_async(
    engine: Engine,
    model: str,
    open_stream: Callable[[Send], AsyncIterator[dict[str, Any]]],
    tools: ToolRunner,
    usage: UsageSink,
    box: StreamedTurn,
) -> AsyncGenerator[str, None]:
    """`stream_sync`, as an async generator."""
    action: Send | RunTools | None = next(engine)
    while True:
        if isinstance(action, Send):
            acc = StreamAccumulator(model)
            try:
                async for chunk in open_stream(action):
                    piece = acc.add(chunk)
                    if piece:
                        yield piece
            except APIError as exc:
                usage(acc.usage)
                raise acc.failure(exc) from None
            outcome: Any = _reply(acc, usage)
        else:
            outcome = await tools.arun(action)  # type: ignore[arg-type]
        action, box.result = _finished(engine, outcome)
        if box.result is not None:
            return
