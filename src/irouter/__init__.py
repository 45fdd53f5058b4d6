"""irouter: hundreds of LLMs through OpenRouter (or any OpenAI-compatible server) in a few lines.

>>> from irouter import Chat                                          # doctest: +SKIP
>>> chat = Chat(["openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"])   # doctest: +SKIP
>>> chat("Who created you?")                                          # doctest: +SKIP
{'openai/gpt-4o-mini': 'OpenAI...', 'meta-llama/llama-3.3-70b-instruct': 'Meta...'}
"""

from typing import TYPE_CHECKING, Any

from ._content import PDF, Audio, Image, Video
from ._embeddings import Embeddings, aembed, embed
from ._ledger import LedgerEntry
from ._outputs import GeneratedImage
from ._persist import history_to_markdown
from ._providers import Percentiles, Provider, Providers, providers
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
    ContextWindowError,
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
    StoreWarning,
    StructuredOutputError,
    UnknownModelError,
)
from .report import Report
from .review import Ranked, Review, Verdict
from .tools import Tool, ToolCall, ToolResult, function_schema

if TYPE_CHECKING:
    from ._log import Log
    from .grid import Cell, CellError, Forecast, Grid, GridResults

_LAZY = {"Cell", "CellError", "Forecast", "Grid", "GridResults"}
"""Public names of `irouter.grid`, imported on first use (it brings asyncio and sqlite3)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import grid

        return getattr(grid, name)
    if name == "Log":  # the conversation log's reader (it brings sqlite3)
        from ._log import Log

        return Log
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
    "ContextWindowError",
    "Embeddings",
    "Forecast",
    "GeneratedImage",
    "Grid",
    "GridResults",
    "Image",
    "IrouterError",
    "LedgerEntry",
    "LocalModelError",
    "Log",
    "MissingAPIKeyError",
    "ModelInfo",
    "MultiModelError",
    "NotFoundError",
    "PaymentRequiredError",
    "Percentiles",
    "PermissionDeniedError",
    "Provider",
    "Providers",
    "Ranked",
    "RateLimitError",
    "Report",
    "RequestTimeoutError",
    "Response",
    "Review",
    "ServerError",
    "StoreWarning",
    "Stream",
    "StructuredOutputError",
    "Tool",
    "ToolCall",
    "ToolResult",
    "UnknownModelError",
    "Verdict",
    "Video",
    "__version__",
    "aembed",
    "embed",
    "function_schema",
    "get_all_models",
    "history_to_markdown",
    "list_models",
    "models",
    "providers",
    "register_endpoint",
    "serve_gguf",
]
