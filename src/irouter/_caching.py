"""Prompt caching (``cache=True``): which models get cache breakpoints, and where they go in a request body.

Pure functions, no I/O. The rule, per model (documented in docs/long-conversations.md):

- Families whose providers cache on their own (OpenAI, DeepSeek, Grok/x-ai, Moonshot, Groq...): nothing is added
  (`AUTOMATIC`); they cache long prefixes without being asked.
- Anthropic (``anthropic/...``): explicit breakpoints, at most `ANTHROPIC_LIMIT` (4) per request, counting any the
  caller placed, in this order of worth: the newest user or tool message (it caches the whole prefix, and moves
  forward each turn and each tool step), the last tool, the system prompt, then the user message before the newest
  (so a long tool loop still finds what an earlier request wrote). ``cache_ttl="1h"`` adds ``"ttl": "1h"``.
- Gemini (``google/gemini...``): one explicit breakpoint (Gemini uses only the last one), on the newest user or
  tool message, so the whole prefix is cached; no TTL (Gemini's is fixed).
- Any other model whose catalog entry lists a cache *write* price (``pricing.input_cache_write``: the provider
  charges for writing, so it caches only when asked): OpenRouter's top-level ``cache_control``, which places and
  moves the breakpoint itself on the providers that take it.
- Anything else (no catalog entry, no write price, local servers): nothing.

Breakpoints exist only in request bodies: history keeps the plain messages, so a saved chat stays clean and the
breakpoints move with the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TTLS = ("5m", "1h")
ANTHROPIC_LIMIT = 4
"""Anthropic takes at most four ``cache_control`` breakpoints per request."""
AUTOMATIC = ("openai/", "deepseek/", "x-ai/", "moonshotai/", "groq/")
"""Slug families whose providers cache prompts automatically: ``cache=True`` adds nothing for them."""


@dataclass(frozen=True)
class CacheRule:
    """How one model's requests are marked: ``explicit`` breakpoints (at most ``limit``), or OpenRouter's
    top-level ``cache_control`` (``limit == 0``)."""

    limit: int
    ttl: str | None = None
    """``"1h"`` for an hour-long cache (Anthropic, top-level); ``None`` for the provider's default (5 minutes)."""

    def marker(self) -> dict[str, str]:
        return {"type": "ephemeral", "ttl": self.ttl} if self.ttl == "1h" else {"type": "ephemeral"}


def check_ttl(value: Any) -> str | None:
    if value is not None and value not in TTLS:
        raise ValueError(f"cache_ttl must be '5m' or '1h' (or None), got {value!r}")
    return value  # type: ignore[no-any-return]


def rule_for(slug: str, record: Mapping[str, Any] | None, ttl: str | None) -> CacheRule | None:
    """The caching rule of ``slug`` (see the module docstring); ``record`` is its catalog entry, if at hand."""
    name = slug.split("@")[0].lower()
    if name.startswith(AUTOMATIC):
        return None
    if name.startswith("anthropic/"):
        return CacheRule(ANTHROPIC_LIMIT, ttl)
    if name.startswith("google/gemini"):
        return CacheRule(1, None)
    pricing = (record or {}).get("pricing") or {}
    if pricing.get("input_cache_write") not in (None, "", "0", 0):
        return CacheRule(0, ttl)
    return None


def _is_marked(part: Any) -> bool:
    return isinstance(part, dict) and "cache_control" in part


def count_breakpoints(body: Mapping[str, Any]) -> int:
    """The ``cache_control`` breakpoints of a body: on tools and on message content parts (not the top-level one)."""
    tools = sum(1 for t in body.get("tools") or [] if _is_marked(t))
    parts = sum(
        1
        for m in body.get("messages") or []
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for p in m["content"]
        if _is_marked(p)
    )
    return tools + parts


def _markable(message: Any) -> bool:
    """A message whose content can carry a breakpoint: a non-empty text (or a list with a non-empty text part)."""
    if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "tool"):
        return False
    content = message.get("content")
    if isinstance(content, str):
        return bool(content)
    return isinstance(content, list) and any(
        isinstance(p, dict) and p.get("type") == "text" and p.get("text") for p in content
    )


def _mark(message: dict[str, Any], marker: dict[str, str]) -> dict[str, Any]:
    """A copy of ``message`` whose last non-empty text part carries ``marker`` (a string becomes one text part)."""
    content = message["content"]
    parts: list[Any] = [{"type": "text", "text": content}] if isinstance(content, str) else [_copy(p) for p in content]
    last = max(i for i, p in enumerate(parts) if isinstance(p, dict) and p.get("type") == "text" and p.get("text"))
    parts[last]["cache_control"] = dict(marker)
    return {**message, "content": parts}


def _copy(part: Any) -> Any:
    return dict(part) if isinstance(part, dict) else part


def _has_marker(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(_is_marked(p) for p in content)


def place_breakpoints(body: dict[str, Any], rule: CacheRule | None) -> dict[str, Any]:
    """``body`` with the breakpoints ``rule`` asks for (a new dict; the messages it marks are copies, so history is
    never changed). A body that already has a top-level ``cache_control`` is left as the caller made it."""
    if rule is None or "cache_control" in body:
        return body
    marker = rule.marker()
    if rule.limit == 0:
        return {**body, "cache_control": marker}
    room = rule.limit - count_breakpoints(body)
    messages = list(body.get("messages") or [])
    tools = list(body.get("tools") or [])
    newest = [i for i, m in enumerate(messages) if _markable(m) and m.get("role") in ("user", "tool")]
    # In order of what a breakpoint there is worth: the newest message (it caches the whole prefix, and moves
    # forward each request), the tools, the system prompt, the user message before the newest.
    wanted: list[int | str] = [*newest[-1:]]
    if rule.limit > 1:
        if tools and not any(_is_marked(t) for t in tools):
            wanted.append("tools")
        if messages and _markable(messages[0]) and messages[0].get("role") in ("system", "developer"):
            wanted.append(0)
        wanted += [i for i in newest[:-1] if messages[i].get("role") == "user"][-1:]
    out = dict(body)
    for place in wanted:
        if room <= 0:
            break
        if place == "tools":
            tools[-1] = {**tools[-1], "cache_control": dict(marker)}
            out["tools"] = tools
            room -= 1
        elif isinstance(place, int) and not _has_marker(messages[place]):
            messages[place] = _mark(messages[place], marker)
            room -= 1
    out["messages"] = messages
    return out


def ttl_of(body: Mapping[str, Any]) -> str | None:
    """``"1h"`` when the body's breakpoints ask for an hour-long cache, else ``None`` (the default 5 minutes)."""
    top = body.get("cache_control")
    if isinstance(top, dict) and top.get("ttl") == "1h":
        return "1h"
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and (tool.get("cache_control") or {}).get("ttl") == "1h":
            return "1h"
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and (part.get("cache_control") or {}).get("ttl") == "1h":
                    return "1h"
    return None
