"""The decisions of one turn, written once as a sans-IO generator, and the drivers that run it.

A turn engine yields `Send` actions (a request body to post) and receives the parsed `Reply`; when the turn is
done it returns a `TurnResult` with the messages to append to history. The sync driver below does the I/O; it
decides nothing. Tool steps, ``max_steps`` and budgets live in the engine, so every driver behaves the same.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._caching import CacheRule, place_breakpoints
from ._cancel import Cancelled, CancelSignal
from ._context import check_fits
from ._wire import Reply, build_body
from .errors import BudgetExceeded, MultiModelError
from .tools import Toolbox, ToolCall, describe_call

T = TypeVar("T")


@dataclass
class Send:
    """Post this body to ``/chat/completions`` and send back the parsed `Reply`."""

    body: dict[str, Any]
    step: int = 1
    """Which request of the turn this is (1, then 2 after the first tool step, ...)."""


@dataclass
class RunTools:
    """Run these tool calls (concurrently is fine) and send back their tool messages, in the same order."""

    calls: list[ToolCall]


@dataclass
class TurnResult:
    """What a finished turn leaves: messages to append to history, the last reply and the value to return."""

    messages: list[dict[str, Any]]
    reply: Reply
    value: Any
    replies: list[Reply] = field(default_factory=list)


Action = Send | RunTools
Engine = Generator[Action, Any, TurnResult]

FINAL_PROMPT = (
    "You have used all the tool steps you may take for this request. Do not call any more tools. Summarise for "
    "the user what you did and what you found, and if the goal was not reached, say so and say what is still left "
    "to do; the user will decide how to go on."
)
"""Sent (as a user message) when ``max_steps`` runs out, in a last request where the model may not use tools."""


@dataclass
class TurnSpec:
    """Everything a turn needs besides the model and its history."""

    options: Mapping[str, Any]
    toolbox: Toolbox | None = None
    max_steps: int = 100
    output: Callable[[str], Any] | None = None
    wire_model: str | None = None
    """The model name the server knows (``llama3.2`` for ``ollama/llama3.2``); the slug when ``None``."""
    """Turns the final text into the return value (structured output); may raise to fail the turn."""
    cache: CacheRule | None = None
    """Where prompt-cache breakpoints go in this model's requests (``cache=True``); ``None``: none."""
    context_length: int | None = None
    """The model's context window (catalog); a request that cannot fit raises before it is sent."""

    def turn_options(self) -> Mapping[str, Any]:
        """The request fields of the turn's first request: the options, with the tools' schemas."""
        return {**self.options, "tools": self.toolbox.schemas} if self.toolbox else self.options

    def body(self, model: str, messages: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
        """The body of one request of the turn: built (`build_body`), with its cache breakpoints."""
        return place_breakpoints(build_body(self.wire_model or model, messages, options), self.cache)

    def request(self, model: str, messages: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
        """`body`, checked against the context window (raises `ContextWindowError` before anything is sent).
        Every request body of a turn is made here."""
        body = self.body(model, messages, options)
        check_fits(model, body, self.context_length)
        return body


def chat_turn(
    model: str, history: Sequence[dict[str, Any]], user: dict[str, Any] | list[dict[str, Any]], spec: TurnSpec
) -> Engine:
    """One user message to one model: send it with the history; while the model calls tools, run them and send
    the results back; when ``max_steps`` requests have all asked for tools, ask once more for a summary with
    ``tool_choice="none"`` (and once more without tools if the model called one anyway).

    ``user`` is the user message, or a list of messages that start the turn (the tool messages answering calls
    left pending). Calls irouter cannot run (tools given as schema dicts) end the turn with those calls pending:
    the assistant message that made them is the last one with ``tool_calls``, and its text is the turn's value.
    """
    new = list(user) if isinstance(user, list) else [user]
    replies: list[Reply] = []
    toolbox = spec.toolbox
    options = spec.turn_options()
    step = 0
    while True:
        reply = yield from _ask(spec.request(model, [*history, *new], options), step + 1, new)
        replies.append(reply)
        new.append(reply.message)
        calls = [describe_call(c, model, step + 1) for c in reply.tool_calls]
        local = [c for c in calls if toolbox and toolbox.runs(c.name)]
        if not local:
            break
        step += 1
        new.extend((yield RunTools(local)))
        if len(local) < len(calls):
            break  # the other calls are the caller's to answer (see Chat.answer_tool_calls)
        if step >= spec.max_steps:
            new.append({"role": "user", "content": FINAL_PROMPT})
            final = {**options, "tool_choice": "none"}
            reply = yield from _ask(spec.request(model, [*history, *new], final), step + 1, new)
            if reply.tool_calls and not reply.content.strip():  # a tool call instead of the summary: ask without tools
                replies.append(reply)
                bare = {k: v for k, v in options.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
                reply = yield from _ask(spec.request(model, [*history, *new], bare), step + 1, new)
            reply.message.pop("tool_calls", None)  # answered without tools: no call may stay unanswered
            replies.append(reply)
            new.append(reply.message)
            break
    pending = bool(reply.tool_calls) and "tool_calls" in reply.message
    value = spec.output(reply.content) if spec.output and not pending else reply.content
    return TurnResult(new, reply, value, replies)


def _ask(body: dict[str, Any], step: int, new: list[dict[str, Any]]) -> Generator[Action, Any, Reply]:
    """Send one request of the turn. If the budget stops it, `BudgetExceeded.messages` gets what the turn had
    (``new``: the user message and the steps so far), whichever request of the turn it was."""
    try:
        reply: Reply = yield Send(body, step)
    except BudgetExceeded as exc:
        exc.messages = list(new)  # for the caller to see; history stays as it was
        raise
    return reply


def merge_options(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Per-call options over construction-time defaults; ``extra_body``/``extra_headers`` merge key by key."""
    merged = {**defaults, **overrides}
    for key in ("extra_body", "extra_headers"):
        if key in defaults and key in overrides and defaults[key] and overrides[key]:
            merged[key] = {**defaults[key], **overrides[key]}
    return merged


def fan_out(
    models: Sequence[str],
    work: Callable[[str], T],
    cancel: CancelSignal | None = None,
    on_done: Callable[[str, bool], None] | None = None,
) -> dict[str, T]:
    """Run ``work(model)`` for every model at once (one thread each) and collect ``{model: result}``.

    One model runs in the calling thread and its exception propagates as is. With several, every model's request
    is in flight at the same time whatever the core count; if any fail, `MultiModelError` carries both the
    results that arrived and the errors. Ctrl-C while waiting, a ``KeyboardInterrupt`` (or ``SystemExit``) in any
    model's work, or ``cancel`` set from elsewhere (a stream closed) ends the wait at once: ``cancel`` is set, so
    every model's work stops before its next request or tool, and the interruption (or `Cancelled`) propagates
    without waiting for requests still in flight. ``on_done(model, answered)`` is called in the calling thread as each
    model finishes. The workers run in copies of the caller's context (`contextvars`).
    """
    cancel = cancel if cancel is not None else CancelSignal()
    if len(models) == 1:
        try:
            value = work(models[0])
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, Cancelled):
                cancel.set()
            elif on_done is not None:
                on_done(models[0], False)
            raise
        if on_done is not None:
            on_done(models[0], True)
        return {models[0]: value}
    import contextvars
    import queue

    done: queue.SimpleQueue[tuple[str, bool, Any]] = queue.SimpleQueue()

    def run(model: str) -> None:
        try:
            done.put((model, True, work(model)))
        except BaseException as exc:  # handed to the caller's thread
            done.put((model, False, exc))

    # Daemon threads: after Ctrl-C the caller returns at once, and requests still in flight cannot hold the
    # process open at exit (a pool's worker threads would be joined).
    for model in models:
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(run, model), name=f"irouter-{model}", daemon=True).start()
    cancel.on_set(lambda: done.put(("", False, Cancelled())))
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    try:
        for _ in models:
            model, ok, value = done.get()
            if ok:
                results[model] = value
            elif isinstance(value, Cancelled) or not isinstance(value, Exception):
                raise value  # Ctrl-C, SystemExit, a closed stream: the whole call stops
            else:
                errors[model] = value
            if on_done is not None:
                on_done(model, ok)
    except BaseException:
        cancel.set()
        raise
    if errors:
        raise MultiModelError({m: results[m] for m in models if m in results}, errors)
    return {m: results[m] for m in models}


async def afan_out(
    models: Sequence[str],
    work: Callable[[str], Awaitable[T]],
    cancel: CancelSignal | None = None,
    on_done: Callable[[str, bool], None] | None = None,
) -> dict[str, T]:
    """`fan_out` for asyncio: one task per model. If the caller's task is cancelled, or any model's work ends in
    a ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, cancellation), ``cancel`` is set, the
    other tasks are cancelled, and that propagates at once; model errors give `MultiModelError` as in `fan_out`."""
    import asyncio

    cancel = cancel if cancel is not None else CancelSignal()

    async def run(model: str) -> T:
        try:
            value = await work(model)
        except Exception:
            if on_done is not None:
                on_done(model, False)
            raise
        if on_done is not None:
            on_done(model, True)
        return value

    if len(models) == 1:
        try:
            return {models[0]: await run(models[0])}
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, Cancelled):
                cancel.set()
            raise
    tasks = {asyncio.ensure_future(run(m)): m for m in models}
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    try:
        pending = set(tasks)
        while pending:
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task.cancelled():
                    raise asyncio.CancelledError
                failure = task.exception()
                if failure is None:
                    results[tasks[task]] = task.result()
                elif isinstance(failure, Cancelled) or not isinstance(failure, Exception):
                    raise failure
                else:
                    errors[tasks[task]] = failure
    except BaseException:
        cancel.set()
        for task in tasks:
            task.cancel()
        raise
    if errors:
        raise MultiModelError({m: results[m] for m in models if m in results}, errors)
    return {m: results[m] for m in models}
