"""The public surface: exported names are pinned, imports stay light, the exception tree is one tree."""

from __future__ import annotations

import subprocess
import sys

import irouter
import irouter.errors

EXPORTED = {
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
    "CapabilityError",
    "ContextWindowError",
    "Call",
    "Cell",
    "CellError",
    "Chat",
    "Embeddings",
    "Forecast",
    "Grid",
    "GridResults",
    "GeneratedImage",
    "IrouterError",
    "LocalModelError",
    "Image",
    "LedgerEntry",
    "Log",
    "MissingAPIKeyError",
    "ModelInfo",
    "MultiModelError",
    "NotFoundError",
    "PDF",
    "PaymentRequiredError",
    "Percentiles",
    "Provider",
    "Providers",
    "Report",
    "PermissionDeniedError",
    "Ranked",
    "RateLimitError",
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
    "register_endpoint",
    "serve_gguf",
    "models",
    "providers",
}


def test_exported_names_are_pinned() -> None:
    assert set(irouter.__all__) == EXPORTED
    for name in irouter.__all__:
        assert hasattr(irouter, name), name


def test_every_error_descends_from_one_root() -> None:
    for name in irouter.errors.__all__:
        cls = getattr(irouter.errors, name)
        assert issubclass(cls, irouter.IrouterError), name
        assert getattr(irouter, name) is cls


def test_seed_import_path() -> None:
    from irouter.base import get_all_models

    assert get_all_models is irouter.get_all_models


def test_import_is_light() -> None:
    """``import irouter`` must not load the HTTP stack, pydantic, openai or the test double."""
    code = (
        "import sys, irouter\n"
        "heavy = {'httpx', 'httpx2', 'httpcore', 'httpcore2', 'truststore', 'openai', 'pydantic', 'anyio', 'ssl',\n"
        "         'irouter.testing', 'http.server', 'ray', 'pyarrow'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
