"""The decisions of one turn, written once as a sans-IO generator, and the drivers that run it.

A turn engine yields `Send` actions (a request body to post) and receives the parsed `Reply`; when the turn is
done it returns a `TurnResult` with the messages to append to history. The sync driver below does the I/O; it
decides nothing. Tool steps, ``max_steps`` and budgets live in the engine, so every driver behaves the same.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._wire import Reply, build_body
from .errors import MultiModelError

T = TypeVar("T")

TRANSPORT_OPTIONS = frozenset({"extra_headers", "timeout"})
"""Keyword arguments that shape the HTTP request rather than its JSON body."""


@dataclass
class Send:
    """Post this body to ``/chat/completions`` and send back the parsed `Reply`."""

    body: dict[str, Any]


@dataclass
class TurnResult:
    """What a finished turn leaves: messages to append to history, the last reply and the value to return."""

    messages: list[dict[str, Any]]
    reply: Reply
    value: Any
    replies: list[Reply] = field(default_factory=list)


Engine = Generator[Send, Reply, TurnResult]


def chat_turn(
    model: str, history: Sequence[dict[str, Any]], user: dict[str, Any], options: Mapping[str, Any]
) -> Engine:
    """One user message to one model: send it with the history, keep the answer."""
    reply = yield Send(build_body(model, [*history, user], options))
    return TurnResult([user, reply.message], reply, reply.content, [reply])


def run_sync(engine: Engine, send: Callable[[Send], Reply]) -> TurnResult:
    """Drive an engine to the end, doing each `Send` with ``send``."""
    action = next(engine)
    while True:
        try:
            action = engine.send(send(action))
        except StopIteration as stop:
            result: TurnResult = stop.value
            return result


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword arguments into (request-body fields, transport options)."""
    body = {k: v for k, v in options.items() if k not in TRANSPORT_OPTIONS}
    transport = {k: v for k, v in options.items() if k in TRANSPORT_OPTIONS}
    return body, transport


def merge_options(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Per-call options over construction-time defaults; ``extra_body``/``extra_headers`` merge key by key."""
    merged = {**defaults, **overrides}
    for key in ("extra_body", "extra_headers"):
        if key in defaults and key in overrides and defaults[key] and overrides[key]:
            merged[key] = {**defaults[key], **overrides[key]}
    return merged


def fan_out(models: Sequence[str], work: Callable[[str], T]) -> dict[str, T]:
    """Run ``work(model)`` for every model at once (one thread each) and collect ``{model: result}``.

    One model runs in the calling thread and its exception propagates as is. With several, every model's request
    is in flight at the same time whatever the core count; if any fail, `MultiModelError` carries both the
    results that arrived and the errors.
    """
    if len(models) == 1:
        return {models[0]: work(models[0])}
    results: dict[str, T] = {}
    errors: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="irouter") as pool:
        futures = {model: pool.submit(work, model) for model in models}
        for model, future in futures.items():
            try:
                results[model] = future.result()
            except Exception as exc:
                errors[model] = exc
    if errors:
        raise MultiModelError(results, errors)
    return results
