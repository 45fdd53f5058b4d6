"""`Stream` and `AsyncStream`: what ``chat(..., stream=True)`` returns.

Every model's turn runs at once in its own worker (a thread, or a task for the async flavour) and hands its text
over as it arrives: one model -> text pieces, several -> ``(slug, piece)`` pairs in arrival order. A turn that
finishes commits to history exactly as the non-streaming call would. Closing the stream early (``break`` and
dropping it, ``close()``, leaving a ``with`` block, Ctrl-C) cancels the turns still running: their connections
are closed and their histories stay as they were.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from .errors import MultiModelError

_DONE, _FAIL = object(), object()
_Piece = TypeVar("_Piece")
"""What a stream yields: ``str`` for one model, ``tuple[str, str]`` (slug, piece) for several."""

Emit = Callable[[str], None]
Produce = Callable[[str, threading.Event, Emit], Any]
"""Runs one model's streamed turn: ``produce(model, cancel, emit) -> value``; it commits the turn itself."""


class Cancelled(Exception):
    """Raised inside a worker whose stream was closed; never reaches the user."""


class _Outcome:
    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.values: dict[str, Any] = {}
        self.errors: dict[str, BaseException] = {}
        self.parts: dict[str, list[str]] = {m: [] for m in models}
        self.active = len(models)
        self.finished: list[str] = []

    def record(self, model: str, kind: object, payload: Any) -> None:
        self.active -= 1
        self.finished.append(model)
        if kind is _DONE:
            self.values[model] = payload
        else:
            self.errors[model] = payload

    def piece(self, model: str, text: str) -> Any:
        """A piece as the reader gets it: the text for one model, ``(slug, text)`` for several."""
        self.parts[model].append(text)
        return text if len(self.models) == 1 else (model, text)

    def finish(self) -> None:
        real = {m: e for m, e in self.errors.items() if not isinstance(e, Cancelled)}
        if real:
            if len(self.models) == 1:
                raise next(iter(real.values()))
            raise MultiModelError(self.values, real)

    def shape(self, values: dict[str, Any]) -> Any:
        return values[self.models[0]] if len(self.models) == 1 else values


def _work(
    model: str, produce: Produce, out: queue.SimpleQueue[tuple[str, object, Any]], cancel: threading.Event
) -> None:
    """One model's streamed turn, in its worker thread: pieces, then the value (or the error), go to ``out``."""
    first = [True]

    def emit(piece: str) -> None:
        if cancel.is_set():
            raise Cancelled
        out.put((model, None, piece))
        if first[0]:  # hand the first text over at once, before decoding the chunks that came with it
            first[0] = False
            time.sleep(0)

    try:
        out.put((model, _DONE, produce(model, cancel, emit)))
    except BaseException as exc:  # handed to the consumer, who raises it
        out.put((model, _FAIL, exc))


class Stream(Generic[_Piece]):
    """Text as it arrives: ``for piece in chat("...", stream=True)``; ``(slug, piece)`` pairs for several models.

    After the loop, `result` holds what the non-streaming call would have returned and `text` the text streamed
    per model. Errors are raised when the stream reaches them, after the text delivered before them: one model's
    error as is, several models' as `MultiModelError`.
    """

    def __init__(self, models: list[str], produce: Produce) -> None:
        self._outcome = _Outcome(models)
        self._queue: queue.SimpleQueue[tuple[str, object, Any]] = queue.SimpleQueue()
        self._cancel = threading.Event()
        # The workers get the queue and the event, never the Stream itself: dropping the stream (a ``break``) must
        # let it be collected, which cancels the turns still running.
        self._threads = [
            threading.Thread(
                target=_work, args=(m, produce, self._queue, self._cancel), name=f"irouter-stream-{m}", daemon=True
            )
            for m in models
        ]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> Stream[_Piece]:
        return self

    def __next__(self) -> _Piece:
        outcome = self._outcome
        try:
            while outcome.active:
                model, kind, payload = self._queue.get()
                if kind is None:
                    return outcome.piece(model, payload)  # type: ignore[no-any-return]
                outcome.record(model, kind, payload)
        except BaseException:
            self.close()
            raise
        outcome.finish()
        raise StopIteration

    @property
    def result(self) -> Any:
        """The value the non-streaming call returns (text, or a parsed object), once the stream has ended."""
        outcome = self._outcome
        if outcome.active or len(outcome.values) != len(outcome.models):
            raise RuntimeError("The stream has not finished (or a model failed): iterate it to the end first")
        return outcome.shape(outcome.values)

    @property
    def text(self) -> Any:
        """The text streamed so far: a string, or ``{slug: text}`` for several models."""
        return self._outcome.shape({m: "".join(p) for m, p in self._outcome.parts.items()})

    @property
    def finished(self) -> list[str]:
        """The models whose turns have ended (answered or failed), in the order they did."""
        return list(self._outcome.finished)

    def close(self) -> None:
        """Stop: turns still running are cancelled (connections closed, histories left as they were)."""
        self._cancel.set()

    def __enter__(self) -> Stream[_Piece]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._cancel.set()


AProduce = Callable[[str, Emit], Coroutine[Any, Any, Any]]


async def _awork(model: str, produce: AProduce, out: Any) -> None:
    """One model's streamed turn as a task (it holds the queue, never the AsyncStream)."""
    import asyncio

    def emit(piece: str) -> None:
        out.put_nowait((model, None, piece))

    try:
        out.put_nowait((model, _DONE, await produce(model, emit)))
    except asyncio.CancelledError:
        out.put_nowait((model, _FAIL, Cancelled()))
        raise
    except BaseException as exc:
        out.put_nowait((model, _FAIL, exc))


class AsyncStream(Generic[_Piece]):
    """`Stream` for ``async for``: ``async for piece in await_chat("...", stream=True)``."""

    def __init__(self, models: list[str], produce: AProduce) -> None:
        import asyncio

        self._outcome = _Outcome(models)
        self._queue: asyncio.Queue[tuple[str, object, Any]] = asyncio.Queue()
        self._tasks = [asyncio.ensure_future(_awork(m, produce, self._queue)) for m in models]

    def __aiter__(self) -> AsyncStream[_Piece]:
        return self

    async def __anext__(self) -> _Piece:
        outcome = self._outcome
        try:
            while outcome.active:
                model, kind, payload = await self._queue.get()
                if kind is None:
                    return outcome.piece(model, payload)  # type: ignore[no-any-return]
                outcome.record(model, kind, payload)
        except BaseException:
            await self.aclose()
            raise
        outcome.finish()
        raise StopAsyncIteration

    result = Stream.result
    text = Stream.text
    finished = Stream.finished

    async def aclose(self) -> None:
        """Stop: turns still running are cancelled (connections closed, histories left as they were)."""
        import asyncio

        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> AsyncStream[_Piece]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        for task in self._tasks:
            if not task.done():
                task.cancel()
