"""Every keyword option irouter knows, declared once: where it is accepted and whether it goes on the wire.

The checks before a request (an option in the wrong place, a combination that makes no sense, a misspelt name),
the split of a call's keyword arguments into the request body and irouter's own settings, and the spelling hints
all read `OPTIONS`. Adding an option is one row here (``_own("name", where, hint)`` for a setting of irouter's
own; tests/test_options.py then asks for a sample value to walk it through every place). Names that are not in
the table are sent as they are (another server's own parameters), except near-misses of OpenRouter's fields,
refused as typos.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Where an option can be given. The labels name what the user wrote: a chat instance is `chat`, a Call is `call`.
NEW_CHAT = "Chat(...)"
"""`Chat`/`AsyncChat` constructor (defaults for every turn)."""
NEW_CALL = "Call(...)"
"""`Call`/`AsyncCall` constructor (defaults for every request)."""
CHAT = "chat(...)"
"""One turn of a `Chat`/`AsyncChat`."""
CALL = "call(...)"
"""One request of a `Call`/`AsyncCall`."""
BATCH = "call.batch(...)"
"""`Call.batch`/`AsyncCall.batch`."""
ANSWER = "chat.answer_tool_calls(...)"
"""`Chat.answer_tool_calls`/`AsyncChat.answer_tool_calls`: the rest of a turn, returned whole (no stream)."""

GRID = "call.grid(...)"
"""`Call.grid`/`AsyncCall.grid` (its own arguments, such as ``max_cost=``, are not options)."""

PLACES = (NEW_CHAT, NEW_CALL, CHAT, CALL, BATCH, ANSWER, GRID)
EVERYWHERE = frozenset(PLACES)
NEW = frozenset({NEW_CHAT, NEW_CALL})
"""Constructors only."""


@dataclass(frozen=True)
class Option:
    """One keyword option."""

    name: str
    where: frozenset[str] = EVERYWHERE
    """The places (`PLACES`) that accept it; anywhere else it is refused before any request."""
    wire: bool = True
    """``True``: a request field, sent in the JSON body (``tools`` and a typed ``response_format`` as JSON
    schemas). ``False``: irouter's own setting, never sent (``extra_body``'s *contents* are sent)."""
    hint: str = ""
    """What to do instead, said when the option is given where it is not accepted."""
    converted: bool = False
    """A request field whose value irouter turns into what is sent (``tools``: functions into JSON schemas)."""


def _fields(names: str) -> tuple[Option, ...]:
    return tuple(Option(name) for name in names.split())


def _own(name: str, where: Iterable[str] = EVERYWHERE, hint: str = "") -> Option:
    return Option(name, frozenset(where), wire=False, hint=hint)


OPTIONS: tuple[Option, ...] = (
    # OpenRouter's documented request fields (openrouter-protocol.md §2.1), sent as they are.
    *_fields(
        "models route stream_options usage max_tokens max_completion_tokens temperature top_p top_k "
        "frequency_penalty presence_penalty repetition_penalty min_p top_a seed stop logit_bias logprobs "
        "top_logprobs response_format structured_outputs tool_choice parallel_tool_calls reasoning "
        "reasoning_effort include_reasoning verbosity provider plugins transforms modalities image_config "
        "web_search_options prediction cache_control prompt_cache_key prompt_cache_options service_tier "
        "session_id user metadata debug preset x_search_filter trace stop_server_tools_when audio n"
    ),
    Option("tools", converted=True),
    # irouter's own settings: never on the wire.
    _own("extra_body"),
    _own("extra_headers"),
    _own("timeout"),
    _own("max_retries"),
    _own("max_retry_wait"),
    _own("max_steps"),
    _own("before_tool"),
    _own("after_tool"),
    _own("check_capabilities"),
    _own("cache_responses", EVERYWHERE - {GRID}, "a grid keeps its answers in its own store (store=...)"),
    _own("cache_responses_ttl", EVERYWHERE - {GRID}, "a grid keeps its answers in its own store (store=...)"),
    _own("log", {NEW_CHAT}, "the conversation log belongs to a Chat: Chat(..., log=True)"),
    _own("stream", {CHAT, CALL, GRID}, "pass stream=True to a call (or to a grid, for time to first token)"),
    _own("raw", {CALL}, "pass raw=True to a call of a Call: Call(...)(message, raw=True)"),
    _own(
        "max_cost",
        {NEW_CHAT, GRID},
        "budgets belong to a Chat (Chat(..., max_cost=...) or chat.max_cost = ...) or a grid "
        "(call.grid(..., max_cost=...))",
    ),
    _own(
        "deferred",
        {GRID},
        "deferred runs belong to a grid: call.grid(prompts, deferred=True) (OpenRouter's Batch API, about half price)",
    ),
    _own("poll_interval", {GRID}, "poll_interval= belongs to a deferred grid: call.grid(prompts, deferred=True, ...)"),
    _own("max_total_tokens", {NEW_CHAT}, "budgets belong to a Chat: Chat(..., max_total_tokens=...)"),
    _own("allow_unpriced", {NEW_CHAT}, "budgets belong to a Chat: Chat(..., max_cost=..., allow_unpriced=True)"),
    # long conversations (docs/long-conversations.md)
    _own("cache"),
    _own("cache_ttl"),
    _own("on_overflow", {NEW_CHAT, CHAT}, "a Call has no history to shorten: on_overflow= belongs to a Chat"),
    _own("summarize_with", {NEW_CHAT, CHAT}, "summaries replace a Chat's old turns: summarize_with= belongs to a Chat"),
    _own(
        "fallbacks",
        {NEW_CHAT, NEW_CALL, CHAT, CALL, ANSWER},
        "grids and batches take OpenRouter's server-side fallbacks instead: models=[...]",
    ),
    _own(
        "fallback_on",
        {NEW_CHAT, NEW_CALL, CHAT, CALL, ANSWER},
        "grids and batches take OpenRouter's server-side fallbacks instead: models=[...]",
    ),
    _own("system", NEW, "the system prompt is given to the constructor (or set as .system)"),
    _own("api_key", NEW, "the key is given to the constructor"),
    _own("base_url", NEW, "the base URL is given to the constructor"),
    _own("http_client", NEW, "the HTTP client is given to the constructor: Chat(..., http_client=...)"),
    # irouter writes these itself.
    _own("model", (), "models are given to the constructor"),
    _own("messages", (), "the message is the first argument"),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
OWN = frozenset(option.name for option in OPTIONS if not option.wire)
"""Names irouter acts on itself; never sent."""
_KEPT = frozenset(option.name for option in OPTIONS if option.converted or not option.wire) - {"extra_body"}
"""What `split` keeps out of the body: irouter's own settings and the values it converts before sending."""

ANSWER_NEUTRAL = frozenset(
    {
        "stream",
        "stream_options",
        "usage",
        "user",
        "session_id",
        "metadata",
        "trace",
        "debug",
        "prompt_cache_key",
        "prompt_cache_options",
        "cache_control",
        "service_tier",
    }
)
"""Request fields that do not change the answer: left out of the response cache's key (a request that differs
only in these is answered from the cache)."""

CONFLICTS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"raw", "stream"}), "a stream yields text, not the whole response: drop raw=True or stream=True"),
)
"""Options that make no sense together (each given a true value)."""


def check(options: Mapping[str, Any], place: str, spelling: bool = True) -> None:
    """Refuse, before any request, an option given where it is not accepted, a combination that makes no sense,
    and (with ``spelling``: the models are OpenRouter's) a name that looks like a typo of a known one."""
    for key in options:
        option = BY_NAME.get(key)
        if option is None:
            if spelling:
                _check_spelling(key)
            continue
        if place not in option.where:
            allowed = " or ".join(p for p in PLACES if p in option.where)
            at = f" (it is accepted by {allowed})" if allowed else ""
            raise TypeError(f"{key}= is not an option of {place}{at}: {option.hint or 'see the docs'}")
    on = {key for key, value in options.items() if value is not None and value is not False}
    for names, why in CONFLICTS:
        if names <= on:
            raise ValueError(f"{' and '.join(f'{n}=' for n in sorted(names))} cannot be used together: {why}")
    extra = options.get("extra_body")
    if isinstance(extra, Mapping) and "stream" in extra:  # the answer would not be read the way it is sent
        raise TypeError("extra_body may not set 'stream': pass stream=True to the call")


CHECKS_DEFAULTS = frozenset({GRID, BATCH})
"""Places whose requests also take the defaults of the `Call` they are made from, which must then suit them too."""
IGNORED_DEFAULTS: dict[str, frozenset[str]] = {GRID: frozenset({"cache_responses", "cache_responses_ttl"})}
"""Defaults a place leaves alone on purpose (a grid keeps its answers in its own store, not the response cache)."""


def check_defaults(defaults: Mapping[str, Any], place: str, owner: str) -> None:
    """Refuse, before any request, a default given to ``owner`` (``Call(...)``) that ``place`` does not accept
    (``fallbacks`` at a grid): it would apply there although the option itself is refused. Constructor-only
    settings and `IGNORED_DEFAULTS` pass; only places of `CHECKS_DEFAULTS` are checked."""
    if place not in CHECKS_DEFAULTS:
        return
    for key in defaults:
        option = BY_NAME.get(key)
        if option is None or place in option.where or option.where <= NEW or key in IGNORED_DEFAULTS.get(place, ()):
            continue
        raise TypeError(
            f"{key}= (a default of this {owner}) is not an option of {place}: {option.hint or 'see the docs'}. "
            f"Make the {place} from a {owner} without it."
        )


def _check_spelling(key: str) -> None:
    """An option that is not known but looks like a known one is almost surely a typo: say so rather than send
    it (OpenRouter would silently ignore it). Unknown names that look like nothing known pass through."""
    import difflib

    close = difflib.get_close_matches(key, BY_NAME, n=1, cutoff=0.8)
    if close:
        raise TypeError(
            f"Unknown option {key}=: did you mean {close[0]}=? (To send it as it is, put it in extra_body.)"
        )


def split(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request-body fields, what irouter handles itself: its own settings and the values it converts). Unknown
    names go to the body; ``extra_body`` stays with the body fields (`build_body` merges its contents last)."""
    body = {k: v for k, v in options.items() if k not in _KEPT}
    kept = {k: v for k, v in options.items() if k in _KEPT}
    return body, kept
