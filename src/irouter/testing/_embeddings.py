"""The double's ``POST /embeddings``: answers shaped like OpenRouter's captured ones (``tests/data/openrouter/
embeddings-*.json``), with deterministic vectors, or what a test queued."""

from __future__ import annotations

import hashlib
import math
import random
import string
import time
from typing import Any

from ._replies import count_tokens

DEFAULT_DIMENSIONS = 8
PROVIDER = "OpenAI"


def embedding_id() -> str:
    """``gen-emb-<unix seconds>-<20 alphanumerics>``, like OpenRouter's."""
    tail = "".join(random.choices(string.ascii_letters + string.digits, k=20))
    return f"gen-emb-{int(time.time())}-{tail}"


def vector_for(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit vector that depends on the text only: equal texts get equal vectors, different ones differ."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [(b - 127.5) / 127.5 for b in digest]
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


def check_input(body: Any) -> str | None:
    """What is wrong with an embeddings request body (OpenRouter's 400 message), or ``None``."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 'Input required: specify "model" and "input"'
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        return '"input" must be a non-empty string or a non-empty array of non-empty strings'
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
        return '"dimensions" must be a whole number of at least 1'
    return None


def embeddings_body(body: dict[str, Any], price: float) -> dict[str, Any]:
    """The answer to a valid request, in OpenRouter's key order: ``object, data, model, usage, provider, id``
    (``model`` without its author prefix, as captured)."""
    value = body["input"]
    texts = [value] if isinstance(value, str) else value
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    tokens = sum(max(1, count_tokens(t)) for t in texts)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "embedding": vector_for(t, dimensions), "index": i} for i, t in enumerate(texts)
        ],
        "model": body["model"].split("/", 1)[-1],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "cost": round(tokens * price, 12)},
        "provider": PROVIDER,
        "id": embedding_id(),
    }
