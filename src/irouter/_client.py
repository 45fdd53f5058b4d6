"""What `Chat` and `Call` share: checking model slugs, the endpoint, defaults, and sending one request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._engine import Send, merge_options, split_options
from ._transport import Endpoint
from ._wire import Reply, parse_completion

CHAT_PATH = "chat/completions"
_RESERVED = {"stream": "streaming", "messages": "the message argument", "model": "the model argument"}


def check_models(model: Any) -> list[str]:
    """``model`` as a list of slugs; raises ``TypeError``/``ValueError`` for anything that is not one."""
    models = [model] if isinstance(model, str) else model
    if not isinstance(models, (list, tuple)) or not models:
        raise TypeError(
            f"model must be a model slug such as 'openai/gpt-4o-mini' or a non-empty list of slugs, got {model!r}"
        )
    for slug in models:
        if not isinstance(slug, str) or not slug.strip() or slug != slug.strip():
            raise ValueError(f"Each model must be a non-empty slug without spaces around it, got {slug!r}")
    duplicates = sorted({s for s in models if models.count(s) > 1})
    if duplicates:
        raise ValueError(f"Each model may appear once; repeated: {', '.join(duplicates)}")
    return list(models)


def check_options(options: Mapping[str, Any]) -> None:
    """Reject keyword arguments that cannot be request options, before any request."""
    for key, what in _RESERVED.items():
        if key in options:
            if key == "stream" and not options[key]:
                continue
            raise TypeError(f"{key}= is not an option here ({what} is handled by irouter)")
    for key in ("extra_body", "extra_headers"):
        value = options.get(key)
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{key} must be a dict, got {type(value).__name__}")
    timeout = options.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")


class ModelClient:
    """Base of `Chat` and `Call`: one or several models behind one endpoint."""

    def __init__(
        self, model: str | list[str], api_key: str | None, base_url: str | None, defaults: dict[str, Any]
    ) -> None:
        self._models = check_models(model)
        check_options(defaults)
        self._endpoint = Endpoint(base_url, api_key)
        self.defaults: dict[str, Any] = defaults
        """Options sent with every request (``temperature``, ``provider``...); per-call arguments win."""

    @property
    def models(self) -> list[str]:
        """The model slugs, in the order given."""
        return list(self._models)

    @property
    def base_url(self) -> str:
        return self._endpoint.base_url

    def _options(self, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        check_options(kwargs)
        options = merge_options(self.defaults, kwargs)
        options.pop("stream", None)
        return split_options(options)

    def _send(self, model: str, action: Send, transport: Mapping[str, Any]) -> Reply:
        body = self._endpoint.post(
            CHAT_PATH,
            action.body,
            model=model,
            extra_headers=transport.get("extra_headers"),
            timeout=transport.get("timeout"),
        )
        return parse_completion(body, model=model)

    def _shape(self, per_model: dict[str, Any]) -> Any:
        """One model -> its value; several -> ``{slug: value}`` (the seed's shapes)."""
        return per_model[self._models[0]] if len(self._models) == 1 else per_model
