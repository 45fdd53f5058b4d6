"""What report tests share: a double whose providers differ in speed and price, and a Review-like value."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from irouter.testing import OpenRouterDouble, Text

LLAMA = "meta-llama/llama-3.3-70b-instruct"
SLUGS = [f"{LLAMA}@deepinfra", f"{LLAMA}@together", f"{LLAMA}@fireworks", "openai/gpt-4o-mini"]
SPEED_AND_PRICE = {"deepinfra": (0.25, 0.00021), "together": (0.05, 0.00035), "fireworks": (0.5, 0.0006)}
"""Seconds the double waits and dollars it charges, per pinned provider (others: 0.15 s, $0.0001)."""


def answer_for(provider: str) -> str:
    return f'From {provider}: <b>CRDTs</b> & "merges"\n- one\n- two'


def by_provider(body: dict[str, Any]) -> Text:
    """The double's answer: says who answered, takes that provider's time, costs its price."""
    provider = (body.get("provider") or {}).get("only", ["openai"])[0]
    delay, cost = SPEED_AND_PRICE.get(provider, (0.15, 0.0001))
    usage = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30, "cost": cost}
    return Text(answer_for(provider), delay=delay, usage=usage)


def double() -> OpenRouterDouble:
    router = OpenRouterDouble()
    router.default = by_provider
    return router


@dataclass(frozen=True)
class Ranked:
    """Shaped like irouter's review ranking items (SPEC-17): model, rank, score, reason."""

    model: str
    rank: int
    score: float
    reason: str


@dataclass(frozen=True)
class ReviewLike:
    ranking: list[Ranked]


REVIEW = ReviewLike(
    [
        Ranked(SLUGS[1], 1, 8.5, "clear & short"),
        Ranked(SLUGS[0], 2, 7.0, "good"),
        Ranked(SLUGS[3], 3, 5.5, "vague"),
        Ranked(SLUGS[2], 4, 3.0, "wrong <here>"),
    ]
)


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, and the text of the page."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def having(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and cls in (a.get("class") or "").split()]
