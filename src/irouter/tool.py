"""Compatibility with irouter 0.3.x, whose tools module was ``irouter.tool``: today's is `irouter.tools`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .tools import function_schema

__all__ = ["function_to_schema"]


def function_to_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """0.3.1's name for `irouter.function_schema`: the tool schema of a function (``{'type': 'function',
    'function': {'name', 'description', 'parameters'}}``), from its signature, type hints and docstring."""
    return function_schema(func)
