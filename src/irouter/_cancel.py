"""One call's cancel signal, and the guard against a tool calling the chat that is running it.

Every call (one message to one model or several, streamed or not, a batch) gets one `CancelSignal`, shared by
every model's driver in that call. It is set when the call is abandoned: Ctrl-C (``KeyboardInterrupt``), a
stream closed or dropped, an async task cancelled, a tool raising ``KeyboardInterrupt``. The drivers check it
before every request (each retry included) and before every tool run, so once it is set nothing new starts for
any model; requests already in flight are abandoned (their cost, once the server reports it, is still counted).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Coroutine
    from concurrent.futures import Future

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a worker whose call was cancelled; never reaches the user."""


class ReentrantCallError(RuntimeError):
    """A tool (or hook) called the chat that is running it. Not sent back to the model: it fails the turn."""


class CancelSignal(threading.Event):
    """A `threading.Event` that, once set, stops every model's work in one call (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._wakers: list[Callable[[], None]] = []
        self._guard = threading.Lock()

    def check(self) -> None:
        """Raise `Cancelled` if the call was cancelled: called before every request and every tool run."""
        if self.is_set():
            raise Cancelled

    def set(self) -> None:
        with self._guard:
            super().set()
            wakers, self._wakers = self._wakers, []
        for wake in wakers:
            wake()

    def on_set(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` when the signal is set (at once if it already is): wakes a waiting coordinator."""
        with self._guard:
            if not self.is_set():
                self._wakers.append(wake)
                return
        wake()


def results_in_order(futures: Sequence[Future[T]]) -> list[T]:
    """The futures' results in their order; but the first to fail (a tool raising ``KeyboardInterrupt``: the
    work handed to a pool catches ``Exception`` itself) raises at once, without waiting for the ones before it."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for future in finished:
        future.result()
    return [future.result() for future in futures]


_BACKGROUND: set[asyncio.Task[Any]] = set()
"""Abandoned requests still running on an event loop (a task needs a strong reference, or it may be collected)."""


async def outlive_cancel(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` as a task of its own, which goes on if the awaiting task is cancelled: an abandoned request
    runs to its end on the same loop (as an abandoned sync request does in its thread), so what it cost is still
    recorded. If the loop is closed first (``asyncio.run`` cancels the tasks left), ``work`` is cancelled."""
    import asyncio

    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_forget)
    return await asyncio.shield(task)


def _forget(task: asyncio.Task[Any]) -> None:
    """An abandoned request ended: drop its reference, and take its error (nobody awaits it any more; asyncio
    would log "Task exception was never retrieved")."""
    _BACKGROUND.discard(task)
    if not task.cancelled():
        task.exception()


_RUNNING: ContextVar[tuple[object, ...]] = ContextVar("irouter_running_turns", default=())
"""The chats whose turn the current code runs inside (a tool sees its chat here)."""


def check_not_running(owner: object) -> None:
    """Refuse a call on a chat from inside one of its own turns (a tool calling the chat that runs it): that turn
    holds the chat until it ends, so the inner call could never start (and its messages would land in the middle
    of the turn)."""
    if any(running is owner for running in _RUNNING.get()):
        name = type(owner).__name__
        raise ReentrantCallError(
            f"A tool (or hook) called the {name} that is running it: that {name} is busy until the turn ends, so "
            f"the call would wait forever. To ask a side question, use a copy: side = chat.fork(), then side(...)"
            f"{' (awaited)' if name.startswith('Async') else ''}; or use a Call, which keeps no history."
        )


@contextmanager
def running(owner: object) -> Iterator[None]:
    """Mark the code inside (and the threads and tasks it starts with this context) as running a turn of
    ``owner``; raises (see `check_not_running`) if it already is."""
    check_not_running(owner)
    token = _RUNNING.set((*_RUNNING.get(), owner))
    try:
        yield
    finally:
        _RUNNING.reset(token)
