"""Compatibility with irouter 0.3.x: ``from irouter.base import get_all_models, history_to_markdown`` keeps
working."""

from ._persist import history_to_markdown
from ._transport import ATTRIBUTION_HEADERS as BASE_HEADERS
from ._transport import OPENROUTER_BASE_URL as BASE_URL
from .catalog import get_all_models

__all__ = ["BASE_HEADERS", "BASE_URL", "get_all_models", "history_to_markdown"]
