"""`Call` and `AsyncCall`: one-off requests to one model or several, without history; batches of them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal, overload

from ._client import AsyncClosing, ModelClient, Plan
from ._content import is_message_list, to_content
from ._engine import TurnResult, fan_out
from ._streams import AsyncStream, Emit, Stream
from ._wire import Response, user_message
from .chat import gathered


class _OneOff(ModelClient):
    """What `Call` and `AsyncCall` share."""

    def __init__(
        self,
        model: str | list[str],
        system: str | None = "",
        api_key: str | None = None,
        base_url: str | None = None,
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

    @staticmethod
    def _value(result: TurnResult, raw: bool) -> Any:
        return Response(result.reply.raw) if raw else result.value

    def __repr__(self) -> str:
        models = repr(self._models[0]) if len(self._models) == 1 else repr(self._models)
        return f"{type(self).__name__}({models})"


def _check_batch(prompts: Any, concurrency: Any) -> list[Any]:
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError("prompts must be a list of messages (strings, content lists or message lists)")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number of at least 1, got {concurrency!r}")
    return list(prompts)


class Call(_OneOff):
    """Stateless calls: every call sends only what it is given.

    >>> ask = Call("openai/gpt-4o-mini")              # doctest: +SKIP
    >>> ask("Say hi")                                 # doctest: +SKIP
    'Hi!'

    Args:
        model: a model slug or a list of slugs (several -> ``{slug: value}`` results, all requested at once).
        system: a system prompt put before string messages; ``""`` for none.
        api_key, base_url, http_client, **defaults: as for `Chat`.
    """

    @overload
    def __call__(
        self, message: str | list[Any], raw: bool = False, stream: Literal[False] = False, **kwargs: Any
    ) -> Any: ...

    @overload
    def __call__(
        self, message: str | list[Any], raw: bool = False, *, stream: Literal[True], **kwargs: Any
    ) -> Stream: ...

    def __call__(self, message: str | list[Any], raw: bool = False, stream: bool = False, **kwargs: Any) -> Any:
        """Send ``message`` and return the reply text, or with ``raw=True`` the whole response.

        ``message`` is a string, a list of texts and content parts, or a list of message dicts
        (``[{'role': 'user', 'content': ...}]``) sent exactly as they are (no system prompt added). The raw
        response reads as attributes: ``r.choices[0].message.content``, ``r.usage.cost``, ``r.provider``.
        ``tools=``, ``max_steps=`` and a typed ``response_format=`` work as for `Chat`; ``stream=True`` returns a
        `Stream` of text pieces.
        """
        messages = self._messages(message)
        plan = self._plan(kwargs)
        self._check_capabilities(messages[-1].get("content"), plan)
        if stream:
            return Stream(self._models, lambda model, cancel, emit: self._streamed(model, messages, plan, cancel, emit))

        def one(model: str) -> Any:
            return self._value(self._run(model, messages[:-1], messages[-1], plan), raw)

        return self._shape(fan_out(self._models, one))

    def _streamed(
        self, model: str, messages: list[dict[str, Any]], plan: Plan, cancel: threading.Event, emit: Emit
    ) -> Any:
        return self._run_streamed(model, messages[:-1], messages[-1], plan, cancel, emit).value

    def batch(self, prompts: Sequence[Any], concurrency: int = 8, **kwargs: Any) -> list[Any]:
        """Send many prompts (each to every model), at most ``concurrency`` requests at a time.

        Returns one entry per prompt, in input order: what the call would return, or the exception it raised (a
        failure never loses the other results). With several models an entry is ``{slug: value or exception}``.
        """
        items = [(self._messages(p), m) for p in _check_batch(prompts, concurrency) for m in self._models]
        plan = self._plan(kwargs)

        def one(item: tuple[list[dict[str, Any]], str]) -> Any:
            messages, model = item
            try:
                return self._run(model, messages[:-1], messages[-1], plan).value
            except Exception as exc:
                return exc

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(items))), thread_name_prefix="irouter") as pool:
            flat = list(pool.map(one, items))
        return _regroup(flat, self._models, self._shape)


class AsyncCall(AsyncClosing, _OneOff):
    """`Call` for asyncio: ``await ask("...")``, ``async for piece in ask("...", stream=True)``, and
    ``await ask.batch(prompts, concurrency=64)``."""

    @overload
    def __call__(
        self, message: str | list[Any], raw: bool = False, stream: Literal[False] = False, **kwargs: Any
    ) -> Any: ...

    @overload
    def __call__(
        self, message: str | list[Any], raw: bool = False, *, stream: Literal[True], **kwargs: Any
    ) -> AsyncStream: ...

    def __call__(self, message: str | list[Any], raw: bool = False, stream: bool = False, **kwargs: Any) -> Any:
        """Like `Call.__call__`: an awaitable of the reply, or with ``stream=True`` an `AsyncStream`."""
        messages = self._messages(message)
        plan = self._plan(kwargs)
        pending = not self._check_capabilities(messages[-1].get("content"), plan, fetch=False)
        if stream:
            return AsyncStream(self._models, lambda model, emit: self._astreamed(model, messages, plan, emit, pending))
        return self._acall(messages, plan, raw, pending)

    async def _acall(self, messages: list[dict[str, Any]], plan: Plan, raw: bool, pending: bool = False) -> Any:
        import asyncio

        await self._acheck_capabilities(messages[-1].get("content"), plan, pending)

        outcomes = await asyncio.gather(
            *(self._arun(m, messages[:-1], messages[-1], plan) for m in self._models), return_exceptions=True
        )
        values = gathered(self._models, outcomes)
        return self._shape({m: self._value(r, raw) for m, r in values.items()})

    async def _astreamed(
        self, model: str, messages: list[dict[str, Any]], plan: Plan, emit: Emit, pending: bool = False
    ) -> Any:
        await self._acheck_capabilities(messages[-1].get("content"), plan, pending)
        return (await self._arun_streamed(model, messages[:-1], messages[-1], plan, emit)).value

    async def batch(self, prompts: Sequence[Any], concurrency: int = 8, **kwargs: Any) -> list[Any]:
        """`Call.batch`, as tasks: at most ``concurrency`` requests in flight; results in input order, failures
        as exception objects in their place."""
        import asyncio

        items = [(self._messages(p), m) for p in _check_batch(prompts, concurrency) for m in self._models]
        plan = self._plan(kwargs)
        gate = asyncio.Semaphore(concurrency)

        async def one(messages: list[dict[str, Any]], model: str) -> Any:
            async with gate:
                try:
                    return (await self._arun(model, messages[:-1], messages[-1], plan)).value
                except Exception as exc:
                    return exc

        flat = await asyncio.gather(*(one(messages, model) for messages, model in items))
        return _regroup(flat, self._models, self._shape)


def _regroup(flat: list[Any], models: list[str], shape: Any) -> list[Any]:
    """Flat (prompt x model) results back to one entry per prompt, shaped like a call's return value."""
    n = len(models)
    return [shape(dict(zip(models, flat[i : i + n], strict=True))) for i in range(0, len(flat), n)]
