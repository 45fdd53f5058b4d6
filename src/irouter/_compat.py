"""Code written against irouter 0.3.1 runs unchanged: its positional argument orders, kept here in one place.

0.3.1's signatures were ``Call(model, base_url, api_key, system)``, ``Chat(model, system, base_url, api_key)``,
``Call.__call__(message, extra_headers, extra_body, raw)`` and ``Chat.__call__(message, tools, max_steps,
extra_headers, extra_body)``. Everything irouter added since is keyword-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CALL_ARGS = ("extra_headers", "extra_body", "raw")
"""What ``Call.__call__`` / ``AsyncCall.__call__`` take positionally after the message."""
CHAT_ARGS = ("tools", "max_steps", "extra_headers", "extra_body")
"""What ``Chat.__call__`` / ``AsyncChat.__call__`` take positionally after the message."""
ORDER_HINT = (
    "The positional order is irouter 0.3.1's: Call(model, base_url, api_key, system) and "
    "Chat(model, system, base_url, api_key); pass anything else by keyword."
)


def positional_options(
    where: str, names: Sequence[str], args: Sequence[Any], options: dict[str, Any]
) -> dict[str, Any]:
    """Put the positional arguments after the message into ``options`` under 0.3.1's names; returns ``options``.

    Only what was really passed goes in, so ``tools=None`` on a call still means "no tools this time" while an
    absent argument leaves the default alone. Too many arguments, or one given twice, raise ``TypeError``.
    """
    if len(args) > len(names):
        raise TypeError(
            f"{where}() takes the message and at most {len(names)} more positional arguments "
            f"({', '.join(names)}), got {len(args)}; pass other options by keyword (stream=True, temperature=...)"
        )
    for name, value in zip(names, args, strict=False):
        if name in options:
            raise TypeError(f"{where}() got two values for {name}=: one positional, one by keyword")
        if isinstance(value, bool) and name != "raw":
            raise TypeError(
                f"{where}(): the positional argument {value!r} lands on {name}= (irouter 0.3.1's order is message, "
                f"{', '.join(names)}); pass stream=/raw= by keyword"
            )
        options[name] = value
    return options
