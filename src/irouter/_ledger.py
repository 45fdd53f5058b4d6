"""Accounting: a ledger entry for every request, token usage and dollars from it, and budgets that are caps: each
request's worst case is reserved before it is sent, and replaced by what it really used when it ends."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ._wire import USAGE_KEYS, Reply
from .errors import BudgetExceeded


@dataclass(frozen=True)
class LedgerEntry:
    """One request: who answered, what it used and cost, how long it took.

    ``cost`` is what the server reported (OpenRouter's ``usage.cost``, in dollars); ``None`` when it reported none
    (local servers, some OpenAI-compatible hosts). ``estimated_cost`` is then computed from the model catalog's
    prices when they are known.
    """

    model: str
    """The slug asked for."""
    served_model: str | None
    """The model that answered (fallbacks and canonical slugs differ from ``model``)."""
    provider: str | None
    generation_id: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: float | None
    estimated_cost: float | None
    latency: float
    """Seconds from sending the request to the whole answer."""
    ttft: float | None
    """Seconds to the first text, for streamed requests."""
    finish_reason: str | None
    step: int
    """1 for a turn's first request, 2 for the one after the first tool step, ..."""
    streamed: bool
    time: float
    """Unix time the request was sent."""
    is_byok: bool | None = None
    purpose: str | None = None
    """What the request was for when it was not a turn of the chat: ``"review"`` (a judge of `Chat.review`) or
    ``"synthesize"`` (the model of `Chat.synthesize`), ``"summarize"`` (the summary of turns dropped by
    ``on_overflow="summarize"``); ``None`` for a turn's requests."""
    cached: bool = False
    """Answered from the response cache (``cache_responses=True``): nothing sent, tokens and cost 0."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's cache by this request (``usage.prompt_tokens_details``); like
    ``cached_tokens`` (read from the cache), they are part of ``prompt_tokens``."""
    cache_savings: float | None = None
    """Dollars caching saved on this request, at the catalog's prices: cache reads at the read price instead of
    the prompt price, less the extra paid for cache writes (negative for a request that only wrote). ``None`` when
    the catalog gives no cache prices for the model, or the request used no cache."""
    fallback_for: str | None = None
    """The chat's slug this request answered for, when ``model`` was one of its ``fallbacks`` (``None``: the
    request was for ``model`` itself)."""
    error: str | None = None
    """Why this model's turn failed, when the turn then went to the next of its ``fallbacks`` (the entry stands
    for the failed attempt: nothing billed unless the failed request reported usage)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def entry_for(
    model: str,
    usage: Mapping[str, Any] | None,
    reply: Reply | None,
    *,
    started: float,
    wall_started: float,
    ttft: float | None,
    step: int,
    streamed: bool,
    price: Callable[[str, int, int], float | None] | None = None,
    purpose: str | None = None,
    fallback_for: str | None = None,
    saving: Callable[[int, int, int], float | None] | None = None,
) -> LedgerEntry:
    """The ledger entry of one finished (or failed but billed) request."""
    usage = usage or {}
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens")) or prompt + completion
    cost = usage.get("cost")
    cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    estimate = price(model, prompt, completion) if cost is None and price is not None and usage else None
    details = usage.get("prompt_tokens_details") or {}
    cached, written = _int(details.get("cached_tokens")), _int(details.get("cache_write_tokens"))
    return LedgerEntry(
        model=model,
        served_model=reply.model if reply else None,
        provider=reply.provider if reply else None,
        generation_id=reply.id if reply else None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=cached,
        reasoning_tokens=_int((usage.get("completion_tokens_details") or {}).get("reasoning_tokens")),
        cost=cost,
        estimated_cost=estimate,
        latency=time.monotonic() - started,
        ttft=ttft,
        finish_reason=reply.finish_reason if reply else "error",
        step=step,
        streamed=streamed,
        time=wall_started,
        is_byok=usage.get("is_byok") if isinstance(usage.get("is_byok"), bool) else None,
        purpose=purpose,
        cache_write_tokens=written,
        cache_savings=saving(prompt, cached, written) if saving is not None and (cached or written) else None,
        fallback_for=fallback_for,
    )


@dataclass(frozen=True)
class Quote:
    """What the model catalog says about a model, to price and bound a request before it is sent."""

    prompt_price: float | None
    """Dollars per prompt token (``None``: unknown)."""
    completion_price: float | None
    max_completion_tokens: int | None
    context_length: int | None
    cache_read_price: float | None = None
    """Dollars per prompt token read from the cache (``pricing.input_cache_read``)."""
    cache_write_price: float | None = None
    """Dollars per prompt token written to the cache (``pricing.input_cache_write``; 5-minute writes)."""
    cache_write_1h_price: float | None = None
    """Dollars per prompt token written for an hour (``pricing.input_cache_write_1h``, Anthropic)."""

    def saving(self, prompt: int, cached: int, written: int, ttl: str | None = None) -> float | None:
        """Dollars caching saved on a request of ``prompt`` tokens, ``cached`` of them read from the cache and
        ``written`` written to it: what the prompt costs at the prompt price, less what it cost (reads at the
        read price, writes at the write price, the 1-hour one when ``ttl == "1h"`` and listed, the rest at the
        prompt price). Negative when the writes cost more than the reads saved. Providers that report the same
        tokens as both read and written (Gemini) count them once as uncached. ``None`` when a price needed is not
        in the catalog; writes without a listed write price are priced like prompt tokens."""
        if self.prompt_price is None or (cached and self.cache_read_price is None):
            return None
        write = self.cache_write_1h_price if ttl == "1h" and self.cache_write_1h_price is not None else None
        write = write if write is not None else self.cache_write_price
        write = self.prompt_price if write is None else write
        uncached = max(0, prompt - cached - written) if cached + written <= prompt else max(0, prompt - cached)
        paid = cached * (self.cache_read_price or 0.0) + written * write + uncached * self.prompt_price
        return prompt * self.prompt_price - paid

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        if self.prompt_price is None or self.completion_price is None:
            return None
        return prompt_tokens * self.prompt_price + completion_tokens * self.completion_price


CHARS_PER_TOKEN = 3
"""Characters of text counted as one prompt token: tokenizers average about four for English, so this errs high."""
TOKENS_PER_ATTACHMENT = 1500
"""Prompt tokens counted for each image, audio clip, video or file sent (a typical image is under 1,500)."""


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """A generous estimate of a request's prompt tokens, without a tokenizer: every text at `CHARS_PER_TOKEN`
    characters a token, `TOKENS_PER_ATTACHMENT` for each attachment, 4 per message, and the tools' schemas."""
    import json

    def count(value: Any) -> int:
        if isinstance(value, str):
            return -(-len(value) // CHARS_PER_TOKEN)
        if isinstance(value, list):
            return sum(count(v) for v in value)
        if isinstance(value, dict):
            kind = value.get("type")
            if kind in ("image_url", "input_audio", "file", "video_url", "input_video"):
                return TOKENS_PER_ATTACHMENT
            return sum(count(v) for k, v in value.items() if k not in ("cache_control",))
        return 0

    messages = body.get("messages") or []
    tools = body.get("tools")
    schema = -(-len(json.dumps(tools, default=str)) // CHARS_PER_TOKEN) if tools else 0
    return 4 * len(messages) + count(messages) + schema


def worst_case(body: Mapping[str, Any], quote: Quote | None) -> tuple[int | None, float | None]:
    """The most a request can use: ``(tokens, dollars)``, each ``None`` when it cannot be known.

    Prompt tokens are estimated from the body (`estimate_prompt_tokens`); completion tokens are the body's
    ``max_tokens`` (or ``max_completion_tokens``), else the catalog's maximum completion tokens for the model, else
    what its context leaves after the prompt. Dollars are those tokens at the catalog's prices."""
    prompt = estimate_prompt_tokens(body)
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    completion: int | None = limit if isinstance(limit, int) and not isinstance(limit, bool) else None
    if completion is None and quote is not None:
        if quote.max_completion_tokens:
            completion = quote.max_completion_tokens
        elif quote.context_length:
            completion = max(0, quote.context_length - prompt)
    if completion is None:
        return None, None
    n = body.get("n")
    completion *= n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return prompt + completion, quote.cost(prompt, completion) if quote is not None else None


def answering(model: str, body: Mapping[str, Any]) -> list[str]:
    """The models that may answer a request to ``model``: it, and OpenRouter's fallbacks (``models=[...]``)."""
    fallbacks = body.get("models")
    if not isinstance(fallbacks, (list, tuple)):
        return [model]
    return list(dict.fromkeys([model, *(m for m in fallbacks if isinstance(m, str))]))


def dearest(quotes: list[Quote | None]) -> Quote | None:
    """One quote no cheaper and no shorter than any of ``quotes`` (the models that may answer one request);
    ``None`` if any is unknown."""
    known = [q for q in quotes if q is not None]
    if len(known) < len(quotes) or not known:
        return None
    if len(known) == 1:
        return known[0]

    def most(values: list[Any]) -> Any:
        return None if any(v is None for v in values) else max(values)

    return Quote(
        most([q.prompt_price for q in known]),
        most([q.completion_price for q in known]),
        most([q.max_completion_tokens for q in known]),
        most([q.context_length for q in known]),
    )


@dataclass(eq=False)
class Hold:
    """One request's reservation against the budgets: its worst case, held until its real usage is known."""

    model: str
    cost: float
    tokens: int


class Meter:
    """A chat's accounts: the ledger (usage and cost derive from it) and its budgets, with the reservations of the
    requests in flight.

    Before a request is sent, `reserve` holds its worst case (`worst_case`); a request whose hold does not fit
    next to what was spent and what the other requests in flight hold is not sent (`BudgetExceeded`). When it
    ends, `settle` replaces the hold by the ledger entry (what was really used). So concurrent requests (several
    models, threads, tasks) share one budget and never pass it together.

    Args:
        max_cost: dollars the chat may spend.
        max_total_tokens: tokens the chat may use.
        quote: ``quote(model)`` -> the catalog's `Quote` for a model (prices, completion limit), or ``None``.
    """

    def __init__(
        self,
        max_cost: float | None = None,
        max_total_tokens: int | None = None,
        quote: Callable[[str], Quote | None] | None = None,
    ) -> None:
        self.max_cost = check_limit("max_cost", max_cost)
        self.max_total_tokens = check_limit("max_total_tokens", max_total_tokens)
        self.quote = quote
        self.strict = False
        """Refuse a request whose worst case cannot be known (a chat without ``allow_unpriced``: its models were
        checked when it was made, so only a per-call fallback without a price, or ``max_tokens=None``, gets here)."""
        self.entries: list[LedgerEntry] = []
        self.holds: list[Hold] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and copies carry the accounts; the lock is made anew, holds of requests in flight stay behind."""
        state = {k: v for k, v in self.__dict__.items() if k != "_lock"}
        state["holds"] = []  # requests in flight belong to the original
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _quote_for(self, model: str, body: Mapping[str, Any]) -> Quote | None:
        """The quote a request is reserved at: ``model``'s, or with OpenRouter's fallbacks (``models=[...]``), which
        may answer instead, the dearest of theirs (``None`` when one of them is not priced)."""
        if self.quote is None:
            return None
        return dearest([self.quote(slug) for slug in answering(model, body)])

    def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars at the catalog's prices (an estimate, for servers that report no cost)."""
        quote = self.quote(model) if self.quote is not None else None
        return quote.cost(prompt_tokens, completion_tokens) if quote is not None else None

    def reserve(self, model: str, body: Mapping[str, Any]) -> Hold | None:
        """Hold the worst case of sending ``body`` to ``model``, or raise `BudgetExceeded` if it does not fit
        (called before every request). ``None`` when the chat has no budget."""
        if self.max_cost is None and self.max_total_tokens is None:
            return None
        tokens, cost = worst_case(body, self._quote_for(model, body))
        for name, known in (("max_cost", cost), ("max_total_tokens", tokens)):
            if self.strict and getattr(self, name) is not None and known is None:
                slugs = answering(model, body)
                raise ValueError(
                    f"{name}= cannot be a cap for this request to {model}: the worst case of "
                    f"{f'one of {slugs}' if len(slugs) > 1 else 'its answer'} is not known (no catalog "
                    "price, or no max_tokens and no catalog limit), so the request was not sent. Drop the unpriced "
                    "fallback or set max_tokens=..., or make the chat with allow_unpriced=True."
                )
        hold = Hold(model, cost or 0.0, tokens or estimate_prompt_tokens(body))
        with self._lock:
            if self.max_cost is not None:
                spent, held = self.spent(), sum(h.cost for h in self.holds)
                self._check("cost", model, spent, held, cost, self.max_cost)
            if self.max_total_tokens is not None:
                used, held_tokens = self.tokens(), sum(h.tokens for h in self.holds)
                self._check("tokens", model, used, held_tokens, tokens, self.max_total_tokens)
            self.holds.append(hold)
        return hold

    @staticmethod
    def _check(kind: str, model: str, spent: float, held: float, need: float | None, limit: float) -> None:
        if spent < limit and (need is None or spent + held + need <= limit):
            return
        name = "max_cost" if kind == "cost" else "max_total_tokens"
        fix = (
            f"the cap with chat.{name} = ... (or Chat(..., {name}=...)), or reset the accounts with chat.reset_usage()"
        )
        if spent >= limit:
            text = (
                f"this chat has spent {_amount(kind, spent)} of {name}={_limit(kind, limit)}, so the request to "
                f"{model} was not sent. Raise {fix}."
            )
        else:
            held_text = f", and requests in flight hold {_amount(kind, held)}" if held else ""
            text = (
                f"the request to {model} was not sent: it could use up to {_amount(kind, need or 0)} (its estimated "
                f"prompt and every completion token it may ask for), and this chat has spent {_amount(kind, spent)} "
                f"of {name}={_limit(kind, limit)}{held_text}. Lower max_tokens, or raise {fix}."
            )
        raise BudgetExceeded(
            f"Budget reached: {text}",
            spent=spent,
            limit=limit,
            kind=kind,
            model=model,
            needed=0.0 if spent >= limit else float(need or 0),
        )

    def settle(self, hold: Hold | None, entry: LedgerEntry | None) -> None:
        """A request ended: its hold gives way to its ledger entry (``None``: nothing was billed)."""
        with self._lock:
            if hold is not None and any(h is hold for h in self.holds):
                self.holds = [h for h in self.holds if h is not hold]
            if entry is not None:
                self.entries.append(entry)

    def record(self, entry: LedgerEntry) -> None:
        self.settle(None, entry)

    def reset(self) -> None:
        with self._lock:
            self.entries = []

    def of(self, model: str) -> list[LedgerEntry]:
        """The entries of ``model``'s turns: its own requests and those its fallbacks made for it."""
        return [e for e in list(self.entries) if (e.fallback_for or e.model) == model]

    def saving(self, model: str, prompt: int, cached: int, written: int, ttl: str | None) -> float | None:
        """`Quote.saving` at ``model``'s catalog prices (``None`` without them)."""
        quote = self.quote(model) if self.quote is not None else None
        return quote.saving(prompt, cached, written, ttl) if quote is not None else None

    def cache_savings(self, model: str) -> float | None:
        """Dollars caching saved on ``model``'s turns; ``None`` when no request reported a known saving."""
        known = [e.cache_savings for e in self.of(model) if e.cache_savings is not None]
        return round(sum(known), 12) if known else None

    def usage(self, model: str) -> dict[str, int]:
        entries = self.of(model)
        return {key: sum(getattr(e, key) for e in entries) for key in USAGE_KEYS}

    def cost(self, model: str, estimated: bool = False) -> float | None:
        """Dollars spent on ``model``: ``None`` when requests were made but none reported a cost."""
        values = [e.cost if e.cost is not None or not estimated else e.estimated_cost for e in self.of(model)]
        known = [v for v in values if v is not None]
        if values and not known:
            return None
        return round(sum(known), 12)

    def spent(self) -> float:
        """Dollars known to be spent over all models (estimates count where no cost was reported)."""
        return sum(e.cost if e.cost is not None else (e.estimated_cost or 0.0) for e in list(self.entries))

    def tokens(self) -> int:
        return sum(e.total_tokens for e in list(self.entries))


def _amount(kind: str, value: float) -> str:
    return f"${value:.6f}" if kind == "cost" else f"{value:,.0f} tokens"


def _limit(kind: str, value: float) -> str:
    return f"${value:g}" if kind == "cost" else f"{value:,}"


def check_limit(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a non-negative number (or None for no limit), got {value!r}")
    return value
