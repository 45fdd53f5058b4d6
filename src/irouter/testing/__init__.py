"""Test irouter apps offline: `OpenRouterDouble`, a real loopback HTTP server speaking OpenRouter's wire format.

Queue what the "model" should answer, point `Chat`/`Call` at ``double.base_url``, and assert on the JSON the server
received::

    from irouter import Chat
    from irouter.testing import OpenRouterDouble, Text, ToolCall, Error

    with OpenRouterDouble() as router:
        router.queue(Text(tool_calls=[ToolCall("get_time", {"tz": "UTC"})]), "It is noon.")
        chat = Chat("openai/gpt-4o-mini", base_url=router.base_url, api_key=router.api_key)
        ...
        assert router.chat_requests[-1]["messages"][-1]["role"] == "tool"

Run it on its own with ``python -m irouter.testing --port 8080``.
"""

from ._catalog import default_models, model_record
from ._replies import Error, Raw, Text, ToolCall, count_tokens
from ._server import DEFAULT_KEY, OpenRouterDouble, Request

__all__ = [
    "DEFAULT_KEY",
    "Error",
    "OpenRouterDouble",
    "Raw",
    "Request",
    "Text",
    "ToolCall",
    "count_tokens",
    "default_models",
    "model_record",
]
