"""`Stream` and `AsyncStream`: what ``chat(..., stream=True)`` returns.

The whole call runs in the background (a thread, or a task for the async flavour) exactly as the non-streaming
call would, every model at once, and hands each model's text over as it arrives: one model -> text pieces,
several -> ``(slug, piece)`` pairs in arrival order. When every model's turn has ended, the turns are committed
to history together, as the non-streaming call does. Closing the stream before that (``break`` and dropping it,
``close()``, leaving a ``with`` block, Ctrl-C, cancelling the task) cancels the call: no model sends another
request or starts another tool, connections are closed, and every history stays as it was.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ._cancel import Cancelled, CancelSignal

__all__ = ["AsyncStream", "Cancelled", "Emit", "Stream"]

_PIECE, _ENDED, _DONE, _FAIL = object(), object(), object(), object()
_Piece = TypeVar("_Piece")
"""What a stream yields: ``str`` for one model, ``tuple[str, str]`` (slug, piece) for several."""

Emit = Callable[[str], None]
Emitter = Callable[[str], Emit]
"""``emitter(model)`` is where that model's text goes."""
Ended = Callable[[str, bool], None]
"""Called as each model's turn ends: ``ended(model, answered)`` (``False`` when it failed)."""
Turn = Callable[[Emitter, Ended], dict[str, Any]]
"""Runs the whole call, committing it: ``turn(emitter, ended) -> {model: value}``; raises like the plain call."""
ATurn = Callable[[Emitter, Ended], Coroutine[Any, Any, dict[str, Any]]]


class _Outcome:
    """What the consumer has seen so far."""

    def __init__(self, models: list[str]) -> None:
        self.models = models
        self.parts: dict[str, list[str]] = {m: [] for m in models}
        self.finished: list[str] = []
        self.failed: list[str] = []
        self.over = False
        self.values: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def take(self, model: str, kind: object, payload: Any) -> Any:
        """Note one message from the worker; returns what to hand out for a piece of text, else ``None``."""
        if kind is _PIECE:
            self.parts[model].append(payload)
            return payload if len(self.models) == 1 else (model, payload)
        if kind is _ENDED:
            self.finished.append(model)
            if not payload:
                self.failed.append(model)
        elif kind is _DONE:
            self.over, self.values = True, payload
        else:
            self.over, self.error = True, payload
        return None

    def finish(self) -> None:
        """At the end: raise what the call raised (a closed stream just ends)."""
        if self.error is not None and not isinstance(self.error, Cancelled):
            raise self.error

    def shape(self, values: dict[str, Any]) -> Any:
        return values[self.models[0]] if len(self.models) == 1 else values


def _emitter(out: Any, cancel: CancelSignal, pause: bool) -> Emitter:
    def emitter(model: str) -> Emit:
        first = [pause]

        def emit(piece: str) -> None:
            cancel.check()
            out.put_nowait((model, _PIECE, piece))
            if first[0]:  # hand the first text over at once, before decoding the chunks that came with it
                first[0] = False
                time.sleep(0)

        return emit

    return emitter


def _work(turn: Turn, out: queue.SimpleQueue[tuple[str, object, Any]], cancel: CancelSignal) -> None:
    """The whole call, in the stream's worker thread: pieces, ends, then the values (or the error) go to ``out``."""
    try:
        values = turn(_emitter(out, cancel, True), lambda model, answered: out.put((model, _ENDED, answered)))
        out.put(("", _DONE, values))
    except BaseException as exc:  # handed to the consumer, who raises it (the turn already set ``cancel`` if needed)
        out.put(("", _FAIL, exc))


class Stream(Generic[_Piece]):
    """Text as it arrives: ``for piece in chat("...", stream=True)``; ``(slug, piece)`` pairs for several models.

    After the loop, `result` holds what the non-streaming call would have returned and `text` the text streamed
    per model. Errors are raised when the stream reaches them, after the text delivered before them: one model's
    error as is, several models' as `MultiModelError`; Ctrl-C (also in a tool) as ``KeyboardInterrupt``.
    """

    def __init__(self, models: list[str], turn: Turn, cancel: CancelSignal) -> None:
        self._outcome = _Outcome(models)
        self._queue: queue.SimpleQueue[tuple[str, object, Any]] = queue.SimpleQueue()
        self._cancel = cancel
        # The worker gets the queue and the signal, never the Stream itself: dropping the stream (a ``break``) must
        # let it be collected, which cancels the call.
        self._thread = threading.Thread(
            target=_work, args=(turn, self._queue, cancel), name="irouter-stream", daemon=True
        )
        self._thread.start()

    def __iter__(self) -> Stream[_Piece]:
        return self

    def __next__(self) -> _Piece:
        outcome = self._outcome
        try:
            while not outcome.over:
                piece = outcome.take(*self._queue.get())
                if piece is not None:
                    return piece  # type: ignore[no-any-return]
        except BaseException:
            self.close()
            raise
        outcome.finish()
        raise StopIteration

    @property
    def result(self) -> Any:
        """The value the non-streaming call returns (text, or a parsed object), once the stream has ended."""
        outcome = self._outcome
        if outcome.values is None:
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

    @property
    def failed(self) -> list[str]:
        """The models whose turns have failed so far (their errors are raised when the stream ends)."""
        return list(self._outcome.failed)

    def close(self) -> None:
        """Stop: the call is cancelled (no further request or tool for any model, connections closed, every
        history left as it was), unless it had already ended."""
        self._cancel.set()

    def __enter__(self) -> Stream[_Piece]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._cancel.set()


async def _awork(turn: ATurn, out: Any, cancel: CancelSignal) -> None:
    """The whole call as a task (it holds the queue, never the AsyncStream)."""
    import asyncio

    try:
        values = await turn(
            _emitter(out, cancel, False), lambda model, answered: out.put_nowait((model, _ENDED, answered))
        )
        out.put_nowait(("", _DONE, values))
    except asyncio.CancelledError:
        cancel.set()
        out.put_nowait(("", _FAIL, Cancelled()))
        raise
    except BaseException as exc:
        out.put_nowait(("", _FAIL, exc))


class AsyncStream(Generic[_Piece]):
    """`Stream` for ``async for``: ``async for piece in chat("...", stream=True)``, inside a running event loop."""

    def __init__(self, models: list[str], turn: ATurn, cancel: CancelSignal) -> None:
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "An async stream must be created inside a running event loop: call the AsyncChat/AsyncCall with "
                "stream=True inside an async function (async for piece in chat(..., stream=True)) run by "
                "asyncio.run(...); outside one, use Chat/Call, whose streams are plain iterators"
            ) from None
        self._outcome = _Outcome(models)
        self._queue: asyncio.Queue[tuple[str, object, Any]] = asyncio.Queue()
        self._cancel = cancel
        self._task = asyncio.ensure_future(_awork(turn, self._queue, cancel))

    def __aiter__(self) -> AsyncStream[_Piece]:
        return self

    async def __anext__(self) -> _Piece:
        outcome = self._outcome
        try:
            while not outcome.over:
                piece = outcome.take(*(await self._queue.get()))
                if piece is not None:
                    return piece  # type: ignore[no-any-return]
        except BaseException:
            await self.aclose()
            raise
        outcome.finish()
        raise StopAsyncIteration

    result = Stream.result
    text = Stream.text
    finished = Stream.finished
    failed = Stream.failed

    async def aclose(self) -> None:
        """Stop: the call is cancelled (no further request or tool for any model, connections closed, every
        history left as it was), unless it had already ended."""
        import asyncio

        self._cancel.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def __aenter__(self) -> AsyncStream[_Piece]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        task = getattr(self, "_task", None)
        if task is not None and not task.done():
            self._cancel.set()
            task.cancel()
