"""irouter: hundreds of LLMs through OpenRouter (or any OpenAI-compatible server) in a few lines.

>>> from irouter import Chat                                          # doctest: +SKIP
>>> chat = Chat(["openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"])   # doctest: +SKIP
>>> chat("Who created you?")                                          # doctest: +SKIP
{'openai/gpt-4o-mini': 'OpenAI...', 'meta-llama/llama-3.3-70b-instruct': 'Meta...'}
"""

from typing import TYPE_CHECKING, Any

from ._content import PDF, Audio, Image, Video
from ._ledger import LedgerEntry
from ._outputs import GeneratedImage
from ._persist import history_to_markdown
from ._streams import AsyncStream, Stream
from ._wire import Response
from .call import AsyncCall, Call
from .catalog import ModelInfo, get_all_models, list_models, models
from .chat import AsyncChat, Chat
from .endpoints import register_endpoint
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APIStatusError,
    APITimeoutError,
    AttachmentError,
    AuthenticationError,
    BadRequestError,
    BatchRefusedError,
    BudgetExceeded,
    CapabilityError,
    IrouterError,
    LocalModelError,
    MissingAPIKeyError,
    MultiModelError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    StructuredOutputError,
    UnknownModelError,
)
from .tools import Tool, ToolCall, ToolResult, function_schema

if TYPE_CHECKING:
    from .grid import Cell, CellError, Forecast, Grid, GridResults

_LAZY = {"Cell", "CellError", "Forecast", "Grid", "GridResults"}
"""Public names of `irouter.grid`, imported on first use (it brings asyncio and sqlite3)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import grid

        return getattr(grid, name)
    raise AttributeError(f"module 'irouter' has no attribute {name!r}")


__version__ = "1.0.0.dev0"


def serve_gguf(path: str, name: str) -> str:
    """Make a GGUF model file available as ``local/<name>`` (llama.cpp serves it on first use); returns the slug.
    See `irouter.endpoints`."""
    from ._local import serve_gguf as serve

    return serve(path, name)


__all__ = [
    "PDF",
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncCall",
    "AsyncChat",
    "AsyncStream",
    "AttachmentError",
    "Audio",
    "AuthenticationError",
    "BadRequestError",
    "BatchRefusedError",
    "BudgetExceeded",
    "Call",
    "CapabilityError",
    "Cell",
    "CellError",
    "Chat",
    "Forecast",
    "GeneratedImage",
    "Grid",
    "GridResults",
    "Image",
    "IrouterError",
    "LedgerEntry",
    "LocalModelError",
    "MissingAPIKeyError",
    "ModelInfo",
    "MultiModelError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTimeoutError",
    "Response",
    "ServerError",
    "Stream",
    "StructuredOutputError",
    "Tool",
    "ToolCall",
    "ToolResult",
    "UnknownModelError",
    "Video",
    "__version__",
    "function_schema",
    "get_all_models",
    "history_to_markdown",
    "list_models",
    "models",
    "register_endpoint",
    "serve_gguf",
]
