"""`Call`: one-off requests to one model or several, without history."""

from __future__ import annotations

from typing import Any

from ._client import ModelClient
from ._content import is_message_list, to_content
from ._engine import fan_out
from ._wire import Response, user_message


class Call(ModelClient):
    """Stateless calls: every call sends only what it is given.

    >>> ask = Call("openai/gpt-4o-mini")              # doctest: +SKIP
    >>> ask("Say hi")                                 # doctest: +SKIP
    'Hi!'

    Args:
        model: a model slug or a list of slugs (several -> ``{slug: value}`` results, all requested at once).
        system: a system prompt put before string messages; ``""`` for none.
        api_key, base_url, **defaults: as for `Chat`.
    """

    def __init__(
        self,
        model: str | list[str],
        system: str | None = "",
        api_key: str | None = None,
        base_url: str | None = None,
        **defaults: Any,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string, got {type(system).__name__}")
        super().__init__(model, api_key, base_url, defaults)
        self.system = system

    def __call__(self, message: str | list[Any], raw: bool = False, **kwargs: Any) -> Any:
        """Send ``message`` and return the reply text, or with ``raw=True`` the whole response.

        ``message`` is a string, a list of texts and content parts, or a list of message dicts
        (``[{'role': 'user', 'content': ...}]``) sent exactly as they are (no system prompt added). The raw
        response reads as attributes: ``r.choices[0].message.content``, ``r.usage.cost``, ``r.provider``.
        ``tools=``, ``max_steps=`` and a typed ``response_format=`` work as for `Chat`.
        """
        messages = self._messages(message)
        plan = self._plan(kwargs)

        def one(model: str) -> Any:
            result = self._run(model, messages[:-1], messages[-1], plan)
            return Response(result.reply.raw) if raw else result.value

        return self._shape(fan_out(self._models, one))

    def _messages(self, message: Any) -> list[dict[str, Any]]:
        if is_message_list(message):
            return list(message)  # sent as they are (never modified)
        user = user_message(to_content(message))
        return [{"role": "system", "content": self.system}, user] if self.system else [user]

    def __repr__(self) -> str:
        models = repr(self._models[0]) if len(self._models) == 1 else repr(self._models)
        return f"Call({models})"
