"""Accounting: a ledger entry for every request, token usage and dollars from it, and budgets checked before
each request is sent."""

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
) -> LedgerEntry:
    """The ledger entry of one finished (or failed but billed) request."""
    usage = usage or {}
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens")) or prompt + completion
    cost = usage.get("cost")
    cost = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
    estimate = price(model, prompt, completion) if cost is None and price is not None and usage else None
    return LedgerEntry(
        model=model,
        served_model=reply.model if reply else None,
        provider=reply.provider if reply else None,
        generation_id=reply.id if reply else None,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cached_tokens=_int((usage.get("prompt_tokens_details") or {}).get("cached_tokens")),
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
    )


class Meter:
    """A chat's accounts: the ledger (usage and cost derive from it) and its budgets.

    Args:
        max_cost: dollars the chat may spend; a request is refused once the spend reaches it.
        max_total_tokens: tokens the chat may use; a request is refused once usage reaches it.
        price: ``price(model, prompt_tokens, completion_tokens)`` -> an estimate in dollars, for servers that do
            not report cost.
    """

    def __init__(
        self,
        max_cost: float | None = None,
        max_total_tokens: int | None = None,
        price: Callable[[str, int, int], float | None] | None = None,
    ) -> None:
        self.max_cost = check_limit("max_cost", max_cost)
        self.max_total_tokens = check_limit("max_total_tokens", max_total_tokens)
        self.price = price
        self.entries: list[LedgerEntry] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles and copies carry the accounts; the lock is made anew."""
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def check(self, model: str) -> None:
        """Raise `BudgetExceeded` if the chat has used up a budget (called before every request)."""
        if self.max_cost is not None:
            spent = self.spent()
            if spent >= self.max_cost:
                raise BudgetExceeded(
                    f"Budget reached: this chat has spent ${spent:.6f} of max_cost=${self.max_cost:g}, so the "
                    f"request to {model} was not sent. Raise the cap with chat.max_cost = ... "
                    "(or Chat(..., max_cost=...)), or reset the accounts with chat.reset_usage().",
                    spent=spent,
                    limit=self.max_cost,
                    kind="cost",
                    model=model,
                )
        if self.max_total_tokens is not None:
            used = self.tokens()
            if used >= self.max_total_tokens:
                raise BudgetExceeded(
                    f"Budget reached: this chat has used {used:,} of max_total_tokens={self.max_total_tokens:,} "
                    f"tokens, so the request to {model} was not sent. Raise the cap with chat.max_total_tokens = "
                    "... (or Chat(..., max_total_tokens=...)), or reset with chat.reset_usage().",
                    spent=used,
                    limit=self.max_total_tokens,
                    kind="tokens",
                    model=model,
                )

    def record(self, entry: LedgerEntry) -> None:
        with self._lock:
            self.entries.append(entry)

    def reset(self) -> None:
        with self._lock:
            self.entries = []

    def of(self, model: str) -> list[LedgerEntry]:
        return [e for e in list(self.entries) if e.model == model]

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


def check_limit(name: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number (or None for no limit), got {value!r}")
    return value
