"""`Chat`: a conversation with one model or several at once, keeping each model's history and token usage."""

from __future__ import annotations

import threading
from typing import Any

from ._client import ModelClient
from ._content import to_content
from ._engine import fan_out
from ._outputs import citations_in, images_in, last_reasoning
from ._wire import add_usage, user_message, zero_usage

DEFAULT_SYSTEM = "You are a helpful assistant."


class Chat(ModelClient):
    """A conversation that keeps history and token usage, per model.

    >>> chat = Chat("openai/gpt-4o-mini", system="You are terse.")       # doctest: +SKIP
    >>> chat("Who created you?")                                         # doctest: +SKIP
    'OpenAI.'

    With a list of slugs every turn goes to all models at once, each with its own history; the return value,
    ``history`` and ``usage`` become ``{slug: ...}`` dicts.

    Args:
        model: a model slug (``"openai/gpt-4o-mini"``) or a list of slugs.
        system: the system prompt that starts every history; ``""`` or ``None`` for none.
        api_key: the key; defaults to the ``OPENROUTER_API_KEY`` environment variable.
        base_url: defaults to ``OPENROUTER_BASE_URL``, else ``https://openrouter.ai/api/v1``. Any
            OpenAI-compatible server works (no key needed for servers other than OpenRouter).
        **defaults: options sent with every turn (``temperature``, ``max_tokens``, ``provider``,
            ``extra_body``, ``extra_headers``, ``timeout``...); a turn's own keyword arguments override them.
    """

    def __init__(
        self,
        model: str | list[str],
        system: str | None = DEFAULT_SYSTEM,
        api_key: str | None = None,
        base_url: str | None = None,
        **defaults: Any,
    ) -> None:
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a string, got {type(system).__name__}")
        super().__init__(model, api_key, base_url, defaults)
        self.system = system
        self._locks = {m: threading.RLock() for m in self._models}
        self._history: dict[str, list[dict[str, Any]]] = {m: self._start() for m in self._models}
        self._usage: dict[str, dict[str, int]] = {m: zero_usage() for m in self._models}

    def _start(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system}] if self.system else []

    def __call__(self, message: str | list[Any], **kwargs: Any) -> Any:
        """Send ``message`` to every model and return the reply text (``{slug: text}`` for several models).

        ``message`` is a string or a list of texts and content parts. Keyword arguments (``temperature``,
        ``max_tokens``, ``response_format``, ``provider``, ``models``, ``reasoning``, ``extra_body``,
        ``extra_headers``, ``timeout``...) apply to this turn only. The user message and the answer are added to
        a model's history only when its turn succeeds; a failed turn leaves that history as it was.

        Tools: ``tools=[f, g]`` lets the model call plain Python functions; irouter runs them (several calls of one
        step at once) and sends the results back until the model answers, at most ``max_steps`` (100) requests,
        then asks it to sum up. ``tool_choice`` and ``parallel_tool_calls`` pass through. ``before_tool(call)``
        sees each call before it runs (return ``False`` to refuse it, or a string to answer in its place) and
        ``after_tool(result)`` each result.

        Structured output: ``response_format=SomeModel`` (a pydantic model, dataclass or TypedDict) returns a
        validated instance (history keeps the JSON text) or raises `StructuredOutputError` with the raw text.
        """
        content = to_content(message)
        plan = self._plan(kwargs)
        user = user_message(content)

        def turn(model: str) -> Any:
            with self._locks[model]:
                history = self._history[model]
                result = self._run(model, history, dict(user), plan, lambda r: add_usage(self._usage[model], r.usage))
                history.extend(result.messages)
                return result.value

        return self._shape(fan_out(self._models, turn))

    @property
    def history(self) -> Any:
        """The messages so far (OpenAI format, plain dicts): a list for one model, ``{slug: list}`` for several."""
        return self._shape(self._history)

    @property
    def usage(self) -> Any:
        """Tokens used so far, summed over every request: ``{'prompt_tokens', 'completion_tokens',
        'total_tokens'}`` for one model, ``{slug: that}`` for several."""
        return self._shape({m: dict(u) for m, u in self._usage.items()})

    @property
    def images(self) -> Any:
        """Images the models made (``modalities=["image", "text"]``), oldest first: a list of `GeneratedImage`
        (``.data``, ``.save(path)``, shown inline in notebooks); ``{slug: list}`` for several models."""
        return self._shape({m: images_in(h) for m, h in self._history.items()})

    @property
    def web_citations(self) -> Any:
        """Web-search citations of the answers so far (``url``, ``title``, ``content``); ``{slug: list}`` for several
        models. Cleared by `reset_history`."""
        return self._shape({m: citations_in(h) for m, h in self._history.items()})

    @property
    def reasoning(self) -> Any:
        """The reasoning text of the last answer, when the model sent it (``None`` otherwise); ``{slug: text}``."""
        return self._shape({m: last_reasoning(h) for m, h in self._history.items()})

    @property
    def turns(self) -> int:
        """How many user messages the (first model's) history holds."""
        return sum(1 for msg in self._history[self._models[0]] if msg.get("role") == "user")

    def reset_history(self) -> None:
        """Back to the system prompt alone, for every model (usage is kept)."""
        for model in self._models:
            with self._locks[model]:
                self._history[model] = self._start()

    def reset_usage(self) -> None:
        """Token counters back to zero (history is kept)."""
        for model in self._models:
            with self._locks[model]:
                self._usage[model] = zero_usage()

    def reset(self) -> None:
        """Both `reset_history` and `reset_usage`."""
        self.reset_history()
        self.reset_usage()

    def __repr__(self) -> str:
        tokens = sum(u["total_tokens"] for u in self._usage.values())
        models = repr(self._models[0]) if len(self._models) == 1 else repr(self._models)
        return f"Chat({models}, turns={self.turns}, tokens={tokens})"
