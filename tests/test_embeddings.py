"""Embeddings over HTTP: the captured OpenRouter shapes, batching, concurrency, retries, the ledger, other servers."""

from __future__ import annotations

import asyncio
import base64
import json
import pickle
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import irouter
from irouter import APIResponseError, NotFoundError, ServerError
from irouter.testing import Error, OpenRouterDouble, Raw
from irouter.testing._embeddings import vector_for

from .conftest import SAMPLES

SMALL = "openai/text-embedding-3-small"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


# --------------------------------------------------------------------------------------------- captured shapes


@pytest.mark.parametrize(
    ("stem", "options"),
    [
        ("embeddings-single-2026-01", {}),
        ("embeddings-multi-input-2026-01", {}),
        ("embeddings-provider-order-user-2026-01", {"user": "e2e-test-user", "provider": {"order": ["openai"]}}),
    ],
)
def test_captured_exchanges(
    stem: str, options: dict[str, Any], router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    request = sample(f"{stem}.request.json")
    answer = sample(f"{stem}.response.truncated.json")
    router.queue_embeddings(answer)
    vectors = irouter.embed(request["input"], request["model"], **options, **connect)
    assert router.embedding_requests == [request]  # the body irouter sent is the captured one
    assert vectors == [item["embedding"] for item in answer["data"]]
    assert all(type(x) is float for v in vectors for x in v)
    [entry] = vectors.ledger
    assert entry.cost == answer["usage"]["cost"]
    assert entry.prompt_tokens == entry.total_tokens == answer["usage"]["prompt_tokens"]
    assert entry.provider == answer["provider"] == "OpenAI"
    assert entry.served_model == answer["model"]  # upstream name, without the author prefix
    assert entry.model == SMALL
    assert entry.generation_id == answer["id"]
    assert vectors.cost == answer["usage"]["cost"]
    assert vectors.usage == {"prompt_tokens": entry.prompt_tokens, "total_tokens": entry.total_tokens}


def test_the_double_answers_like_openrouter(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    """Same headers and key order as the capture; usage with a cost; provider; a gen-emb- id."""
    import httpx2

    meta = sample("embeddings-single-2026-01.response-meta.json")
    captured = sample("embeddings-single-2026-01.response.truncated.json")
    response = httpx2.post(
        f"{router.base_url}/embeddings",
        json=sample("embeddings-multi-input-2026-01.request.json"),
        headers={"Authorization": f"Bearer {router.api_key}"},
    )
    assert response.status_code == meta["status"] == 200
    assert response.headers["content-type"] == meta["headers"]["content-type"] == "application/json"
    body = response.json()
    assert list(body) == list(captured) == ["object", "data", "model", "usage", "provider", "id"]
    assert list(body["usage"]) == list(captured["usage"])
    assert body["model"] == captured["model"]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert body["id"].startswith("gen-emb-")


def test_no_successful_provider_in_a_200_body(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    envelope = (SAMPLES / "error-in-200-embeddings-no-successful-provider-responses.response.json").read_bytes()
    router.queue_embeddings(Raw(envelope, status=200))
    with pytest.raises(NotFoundError) as info:
        irouter.embed(["a"], **connect)
    assert info.value.status == 200
    assert info.value.code == 404
    assert info.value.message == "No successful provider responses."
    assert info.value.model == SMALL
    assert len(router.embedding_requests) == 1  # the policy does not retry a 404


def test_transient_errors_are_retried_by_the_policy(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue_embeddings(Error(503, "overloaded", in_body=True), Error(429, "slow down", retry_after=0))
    vectors = irouter.embed(["only text"], **connect)
    assert vectors == [vector_for("only text")]
    assert len(router.embedding_requests) == 3
    assert len(vectors.ledger) == 1  # failed attempts were not billed
    router.queue_embeddings(Error(502, "down"), Error(502, "down"))
    with pytest.raises(ServerError):
        irouter.embed(["x"], max_retries=1, **connect)
    assert len(router.embedding_requests) == 5


# --------------------------------------------------------------------------------------------- batching


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=12), max_size=12),
    batch_size=st.integers(1, 5),
    concurrency=st.integers(1, 4),
)
def test_batches_keep_the_texts_order(
    router: OpenRouterDouble, connect: dict[str, str], texts: list[str], batch_size: int, concurrency: int
) -> None:
    router.reset()
    vectors = irouter.embed(texts, batch_size=batch_size, concurrency=concurrency, **connect)
    assert vectors == [vector_for(t) for t in texts]
    sent = router.embedding_requests
    assert sorted(len(r["input"]) for r in sent) == sorted(
        len(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
    )
    assert sorted(t for r in sent for t in r["input"]) == sorted(texts)
    assert len(vectors.ledger) == len(sent)
    assert sorted(e.step for e in vectors.ledger) == list(range(1, len(sent) + 1))
    assert vectors.usage["prompt_tokens"] == sum(e.prompt_tokens for e in vectors.ledger)


def test_one_at_a_time_sends_batches_in_order(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    texts = [f"text {i}" for i in range(7)]
    vectors = irouter.embed(texts, batch_size=3, concurrency=1, dimensions=5, **connect)
    assert [r["input"] for r in router.embedding_requests] == [texts[0:3], texts[3:6], texts[6:]]
    assert all(r["dimensions"] == 5 for r in router.embedding_requests)
    assert [len(v) for v in vectors] == [5] * 7
    assert [e.step for e in vectors.ledger] == [1, 2, 3]
    assert vectors.cost == pytest.approx(sum(e.cost for e in vectors.ledger))
    again = pickle.loads(pickle.dumps(vectors))  # plain data: the vectors and their ledger travel
    assert again == vectors
    assert again.ledger == vectors.ledger
    assert again.model == SMALL


def test_a_failed_batch_fails_the_call(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue_embeddings(Error(400, "bad input"))
    with pytest.raises(irouter.BadRequestError, match="bad input"):
        irouter.embed(["a", "b", "c"], batch_size=1, concurrency=1, **connect)
    assert len(router.embedding_requests) == 1


def test_answers_out_of_order_per_token_and_base64(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    packed = base64.b64encode(struct.pack("<3f", 0.5, -1.0, 2.0)).decode()
    router.queue_embeddings(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "embedding": packed, "index": 2},
                {"object": "embedding", "embedding": [[1.0, 2.0], [3.0, 4.0]], "index": 0},  # one vector per token
                {"object": "embedding", "embedding": [7, 8], "index": 1},
            ],
            "model": "m",
        }
    )
    vectors = irouter.embed(["x", "y", "z"], **connect)
    assert vectors == [[2.0, 3.0], [7.0, 8.0], [0.5, -1.0, 2.0]]
    assert vectors.cost is None  # no usage reported: unknown, not zero
    router.queue_embeddings({"object": "list", "data": [{"embedding": [1.0], "index": 0}]})
    with pytest.raises(APIResponseError, match="1 vectors for 2 texts"):
        irouter.embed(["x", "y"], max_retries=0, **connect)


def test_bad_input_raises_before_any_request(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="empty string"):
        irouter.embed(["ok", ""], **connect)
    with pytest.raises(TypeError, match="item 1 is int"):
        irouter.embed(["ok", 3], **connect)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a string or a list of strings"):
        irouter.embed(b"bytes", **connect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        irouter.embed(["a"], batch_size=0, **connect)
    with pytest.raises(ValueError, match="concurrency"):
        irouter.embed(["a"], concurrency=True, **connect)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dimensions"):
        irouter.embed(["a"], dimensions=-1, **connect)
    with pytest.raises(ValueError, match="model"):
        irouter.embed(["a"], " openai/x", **connect)
    with pytest.raises(TypeError, match="provider must be a dict"):
        irouter.embed(["a"], provider="openai", **connect)  # type: ignore[arg-type]
    assert router.requests == []
    assert irouter.embed([], **connect) == []
    assert router.requests == []


def test_a_single_string_is_one_text(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    vectors = irouter.embed("sunny day at the beach", extra_body={"encoding_format": "float"}, **connect)
    assert vectors == [vector_for("sunny day at the beach")]
    assert router.embedding_requests == [
        {"input": ["sunny day at the beach"], "model": SMALL, "encoding_format": "float"}
    ]


# --------------------------------------------------------------------------------------------- async, numpy, servers


def test_aembed(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    texts = [f"t{i}" for i in range(10)]
    router.queue_embeddings(Error(503, "busy"))
    vectors = asyncio.run(irouter.aembed(texts, batch_size=4, concurrency=2, **connect))
    assert vectors == [vector_for(t) for t in texts]
    assert len(router.embedding_requests) == 4  # three batches, one retried
    assert len(vectors.ledger) == 3
    router.queue_embeddings(Error(401, "User not found."))
    with pytest.raises(irouter.AuthenticationError):
        asyncio.run(irouter.aembed(texts, batch_size=4, concurrency=1, **connect))


def test_to_numpy(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    numpy = pytest.importorskip("numpy")
    vectors = irouter.embed(["a", "b"], dimensions=3, **connect)
    array = vectors.to_numpy()
    assert array.shape == (2, 3)
    assert array.dtype == numpy.float32
    assert numpy.allclose(array, numpy.array([vector_for("a", 3), vector_for("b", 3)]))


def test_numpy_is_not_imported_unless_asked(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    code = (
        "import sys, irouter\n"
        f"v = irouter.embed(['a'], base_url={router.base_url!r}, api_key={router.api_key!r})\n"
        "print(len(v[0]), 'numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["8", "False"]


@pytest.fixture
def other() -> Iterator[OpenRouterDouble]:
    with OpenRouterDouble(api_key=None, require_auth=False) as double:
        irouter.register_endpoint("emb/", double.base_url)
        yield double
        irouter.endpoints.unregister_endpoint("emb/")


def test_other_servers_by_prefix_and_base_url(other: OpenRouterDouble) -> None:
    vectors = irouter.embed(["hello"], "emb/nomic-embed-text")
    assert other.embedding_requests == [{"input": ["hello"], "model": "nomic-embed-text"}]
    assert vectors.model == "emb/nomic-embed-text"
    assert irouter.embed(["hi"], "bge-small", base_url=other.base_url, api_key="none") == [vector_for("hi")]
    assert other.embedding_requests[-1]["model"] == "bge-small"
