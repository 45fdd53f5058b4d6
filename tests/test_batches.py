"""Deferred grids (OpenRouter's Batch API) against the double: real HTTP, the bytes the double received, the store.

The evidence for the wire format is the documentation only (``openrouter-protocol.md`` section 13 and the
``batch-*-doc-example.*`` samples): the sample tests below pin irouter's submission to the docs' examples byte for
byte and read the docs' completed batch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from irouter import BatchRefusedError, BudgetExceeded, Call
from irouter import _batch_wire as wire
from irouter.testing import Error, OpenRouterDouble

from .conftest import SAMPLES
from .test_cli import env as cli_env  # noqa: F401 (a fixture)
from .test_cli import run

MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct")
PROMPTS = ["What is 2 + 2?", "Name a colour.", "Say hi."]
FAST = 0.01
"""Seconds of the first wait between polls in these tests."""


@pytest.fixture
def router() -> Any:
    with OpenRouterDouble() as double:
        double.batches.step = 0.03
        yield double


def grid(router: OpenRouterDouble, store: Path, prompts: list[Any] = PROMPTS, **options: Any) -> Any:
    call = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key)
    options.setdefault("deferred", True)
    return call.grid(prompts, store=store, progress=False, poll_interval=FAST, **options)


def submissions(router: OpenRouterDouble) -> list[Any]:
    """The JSON of every batch submission the double received (accepted or not)."""
    return [r for r in router.requests if r.method == "POST" and r.path == "/api/beta/batches"]


def submitted_ids(router: OpenRouterDouble) -> Counter[str]:
    return Counter(item["custom_id"] for r in submissions(router) for item in json.loads(r.body)["requests"])


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


# --------------------------------------------------------------------------------------------- end to end
def test_a_two_model_deferred_grid_end_to_end(router: OpenRouterDouble, tmp_path: Path) -> None:
    store = tmp_path / "eval.sqlite"
    cells = list(grid(router, store).run())

    assert router.chat_requests == []  # nothing went the normal way
    posts = submissions(router)
    assert [json.loads(p.body)["model"] for p in posts] == list(MODELS)  # one batch per model
    for post in posts:
        body = json.loads(post.body)
        assert body["endpoint"] == "/v1/chat/completions"
        assert [r["body"]["messages"][-1]["content"] for r in body["requests"]] == PROMPTS
        for item in body["requests"]:
            assert set(item) == {"custom_id", "body"}
            assert not {"model", "deferred", "poll_interval", "stream"} & set(item["body"])
    assert sorted(submitted_ids(router).values()) == [1] * 6

    assert sorted((c.prompt_id, c.model) for c in cells) == sorted((i, m) for i in range(3) for m in MODELS)
    for cell in cells:
        assert cell.ok, cell.error
        assert cell.text == f"You said: {PROMPTS[cell.prompt_id]}"
        assert cell.requests == 1
        assert cell.prompt_tokens > 0
        assert cell.completion_tokens > 0
        assert not cell.from_store

    # The same grid the normal way, on another store: the same answers, at twice the price.
    normal = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key).grid(
        PROMPTS, store=tmp_path / "normal.sqlite", progress=False
    )
    full = {(c.prompt_id, c.model): c for c in normal.run()}
    for cell in cells:
        twin = full[(cell.prompt_id, cell.model)]
        assert (cell.text, cell.prompt_tokens, cell.completion_tokens) == (
            twin.text,
            twin.prompt_tokens,
            twin.completion_tokens,
        )
        assert cell.cost == pytest.approx(twin.cost * wire.PRICE_SHARE)

    # The results read back like a normal grid's, and a second run sends nothing.
    again = grid(router, store)
    assert [c.to_dict()["text"] for c in again.results()] == [c.to_dict()["text"] for c in normal.results()]
    before = len(router.requests)
    rerun = list(again.run())
    assert all(c.from_store for c in rerun)
    assert len(rerun) == 6
    assert [r.path for r in router.requests[before:]] == []  # the catalog is cached: nothing at all
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT model, status, cells, collected, cost FROM batches ORDER BY model").fetchall()
    assert [(m, s, n, c) for m, s, n, c, _ in rows] == [
        ("meta-llama/llama-3.3-70b-instruct", "completed", 3, 1),
        ("openai/gpt-4o-mini", "completed", 3, 1),
    ]
    for model, *_, cost in rows:
        assert cost == pytest.approx(sum(c.cost for c in cells if c.model == model))


def test_the_double_moves_batches_through_the_documented_statuses(router: OpenRouterDouble, tmp_path: Path) -> None:
    router.batches.step = 0.5
    cells = list(grid(router, tmp_path / "s.sqlite", PROMPTS[:1]).run())
    assert len(cells) == 2
    assert all(c.ok for c in cells)
    order = ["validating", "in_progress", "finalizing", "completed"]
    for batch_id in router.batches.ids:
        seen = [status for served, status in router.batches.served if served == batch_id]
        assert seen == sorted(seen, key=order.index)  # never back
        assert set(seen) == set(order)  # polled in every status, until completed
        assert seen[-1] == "completed"


def test_progress_names_the_batches(router: OpenRouterDouble, tmp_path: Path, capsys: Any) -> None:
    call = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key)
    list(call.grid(PROMPTS, store=tmp_path / "p.sqlite", progress=True, deferred=True, poll_interval=FAST).run())
    err = capsys.readouterr().err
    assert "batches: 2 submitted, 2 in progress" in err
    assert "batches: 2 submitted, 0 in progress" in err
    assert "grid: 6/6 done, 0 failed" in err


def test_async_deferred_grid(router: OpenRouterDouble, tmp_path: Path) -> None:
    import asyncio

    from irouter import AsyncCall

    async def main() -> list[Any]:
        call = AsyncCall(list(MODELS), base_url=router.base_url, api_key=router.api_key)
        g = call.grid(PROMPTS, store=tmp_path / "a.sqlite", progress=False, deferred=True, poll_interval=FAST)
        return [cell async for cell in g.run()]

    cells = asyncio.run(main())
    assert len(cells) == 6
    assert all(c.ok for c in cells)
    assert router.chat_requests == []
    assert len(submissions(router)) == 2


# --------------------------------------------------------------------------------------------- the wire
def test_endpoint_and_model_come_before_requests_in_the_bytes_sent(router: OpenRouterDouble, tmp_path: Path) -> None:
    list(grid(router, tmp_path / "s.sqlite", temperature=0.5, max_tokens=20).run())
    for post in submissions(router):
        raw = post.body
        assert raw.startswith(b'{"endpoint":"/v1/chat/completions","model":"')
        assert raw.index(b'"model"') < raw.index(b'"requests"')
        pairs = json.loads(raw, object_pairs_hook=lambda p: [k for k, _ in p])
        assert pairs[:3] == ["endpoint", "model", "requests"]
        first = json.loads(raw)["requests"][0]["body"]
        assert (first["temperature"], first["max_tokens"]) == (0.5, 20)


def test_the_double_refuses_requests_before_endpoint_like_the_docs(router: OpenRouterDouble) -> None:
    headers = {"Authorization": f"Bearer {router.api_key}", "Content-Type": "application/json"}
    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    lines = b'[{"custom_id":"a","body":{"messages":[{"role":"user","content":"hi"}]}}]'
    wrong = b'{"requests":' + lines + b',"endpoint":"/v1/chat/completions","model":"openai/gpt-4o-mini"}'
    right = b'{"endpoint":"/v1/chat/completions","model":"openai/gpt-4o-mini","requests":' + lines + b"}"
    refused = httpx2.post(url, content=wrong, headers=headers)
    assert refused.status_code == 400
    assert "before requests" in refused.json()["error"]["message"]
    assert refused.json()["error"]["code"] == 400
    accepted = httpx2.post(url, content=right, headers=headers)
    assert accepted.status_code == 202
    assert router.batches.submissions == [right]


@pytest.mark.parametrize(
    ("name", "model", "endpoint"),
    [
        ("batch-chat-completions-doc-example.submit.request.json", "openai/gpt-4o", "/v1/chat/completions"),
        ("batch-messages-doc-example.submit.request.json", "anthropic/claude-3.5-sonnet", "/v1/messages"),
        ("batch-embeddings-doc-example.submit.request.json", "openai/text-embedding-3-small", "/v1/embeddings"),
    ],
)
def test_submissions_match_the_docs_examples_byte_for_byte(name: str, model: str, endpoint: str) -> None:
    doc = sample(name)
    lines = [wire.request_line(r["custom_id"], r["body"]) for r in doc["requests"]]
    assert wire.submission(model, lines, endpoint) == json.dumps(doc, separators=(",", ":")).encode()


def test_the_grid_sends_the_docs_chat_example(router: OpenRouterDouble, tmp_path: Path) -> None:
    doc = sample("batch-chat-completions-doc-example.submit.request.json")
    call = Call("openai/gpt-4o", base_url=router.base_url, api_key=router.api_key)
    prompt = doc["requests"][0]["body"]["messages"][0]["content"]
    cells = list(call.grid([prompt], store=tmp_path / "d.sqlite", deferred=True, poll_interval=FAST).run())
    assert cells[0].ok
    sent = json.loads(submissions(router)[0].body)
    assert sent["requests"][0]["custom_id"] == cells[0].key
    sent["requests"][0]["custom_id"] = doc["requests"][0]["custom_id"]
    assert sent == doc


def test_the_doubles_answers_have_the_docs_keys(router: OpenRouterDouble) -> None:
    headers = {"Authorization": f"Bearer {router.api_key}"}
    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    doc = sample("batch-chat-completions-doc-example.submit.request.json")
    accepted = httpx2.post(url, content=json.dumps(doc).encode(), headers=headers)
    assert accepted.status_code == 202
    answer = accepted.json()
    documented = sample("batch-chat-completions-doc-example.submit.response.json")
    assert list(answer) == list(documented)
    assert (answer["status"], answer["results"], answer["usage"]) == ("validating", None, None)
    deadline = time.monotonic() + 30
    while (polled := httpx2.get(f"{url}/{answer['id']}", headers=headers).json())["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    completed = sample("batch-chat-completions-doc-example.poll-completed.response.json")
    assert list(polled) == list(completed)
    assert list(polled["results"][0]) == list(completed["results"][0])
    assert polled["results"][0]["response"]["body"]["id"].startswith("gen-batch-")


def test_irouter_reads_the_docs_completed_batch() -> None:
    doc = sample("batch-chat-completions-doc-example.poll-completed.response.json")
    info = wire.read_batch(doc)
    assert (info.id, info.model, info.status, info.terminal) == ("batch_123", "openai/gpt-4o", "completed", True)
    assert (info.total, info.completed, info.failed, info.cost) == (1, 1, 0, 0.000225)
    (result,) = wire.results_of(doc)
    assert (result.custom_id, result.status_code, result.error) == ("req-0001", 200, None)
    from irouter._wire import parse_completion

    assert parse_completion(result.body).content == "OpenRouter provides one API for many AI models."
    fragment = sample("batch-embeddings-doc-example.poll-completed.results-fragment.json")
    read = [wire.read_result(item) for item in fragment]
    assert [r.custom_id for r in read] == ["emb-0001", "emb-0002"]
    assert [len(r.body["data"]) for r in read if r.body] == [2, 1]


def test_a_result_with_both_or_neither_is_refused() -> None:
    base = {"id": "batch_req_1", "custom_id": "a"}
    with pytest.raises(ValueError, match="exactly one of response or error"):
        wire.read_result({**base, "response": None, "error": None})
    with pytest.raises(ValueError, match="exactly one of response or error"):
        wire.read_result({**base, "response": {"status_code": 200, "body": {}}, "error": {"message": "x"}})


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/beta"),
        ("http://127.0.0.1:8080/api/v1/", "http://127.0.0.1:8080/api/beta"),
        ("https://proxy.example/openrouter/api/v1", "https://proxy.example/openrouter/api/beta"),
    ],
)
def test_the_batch_routes_live_under_api_beta(base_url: str, expected: str) -> None:
    assert wire.batches_base(base_url) == expected


@given(hs.lists(hs.binary(min_size=1, max_size=40), max_size=60), hs.integers(1, 7), hs.integers(300, 600))
def test_batches_are_split_within_the_limits(lines: list[bytes], most: int, size: int) -> None:
    parts = wire.split(lines, most, size)
    assert [i for part in parts for i in part] == list(range(len(lines)))  # every line once, in order
    for part in parts:
        assert 1 <= len(part) <= most
        body = wire.submission("m/m", [lines[i] for i in part])
        assert len(body) <= size


@pytest.mark.slow
def test_a_grid_bigger_than_one_batch_is_split(router: OpenRouterDouble, tmp_path: Path) -> None:
    """One model's cells past `MAX_REQUESTS` go in two batches, each within the limit, each cell once."""
    n = wire.MAX_REQUESTS + 3
    call = Call(MODELS[0], base_url=router.base_url, api_key=router.api_key)
    g = call.grid(
        [f"p{i}" for i in range(n)], store=tmp_path / "s.sqlite", progress=False, deferred=True, poll_interval=FAST
    )
    cells = list(g.run())
    assert len(cells) == n
    assert all(c.ok for c in cells)
    assert [len(json.loads(p.body)["requests"]) for p in submissions(router)] == [wire.MAX_REQUESTS, 3]
    assert sorted(submitted_ids(router).values()) == [1] * n


# --------------------------------------------------------------------------------------------- refused cells
IMAGE = [
    {"type": "text", "text": "What is in this picture?"},
    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
]


def test_refused_cells_are_named_before_anything_is_submitted(router: OpenRouterDouble, tmp_path: Path) -> None:
    prompts: list[Any] = [{"id": "text", "prompt": "Say hi."}, {"id": "picture", "prompt": IMAGE}]
    g = grid(router, tmp_path / "s.sqlite", prompts)
    with pytest.raises(BatchRefusedError) as info:
        list(g.run())
    assert sorted(info.value.cells) == sorted(
        ("picture", m, "sends an image (the Batch API takes text only)") for m in MODELS
    )
    assert "deferred='mixed'" in str(info.value)
    assert submissions(router) == []
    assert router.chat_requests == []

    # deferred="mixed": the picture goes the normal way, the text through the Batch API.
    cells = list(grid(router, tmp_path / "s.sqlite", prompts, deferred="mixed").run())
    assert sorted((c.prompt_id, c.model) for c in cells if c.ok) == sorted(
        (p, m) for p in ("text", "picture") for m in MODELS
    )
    assert sorted(b["model"] for b in router.chat_requests) == sorted(MODELS)
    assert all(b["messages"][-1]["content"] == IMAGE for b in router.chat_requests)
    assert sorted(submitted_ids(router).values()) == [1, 1]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"modalities": ["image", "text"]}, "asks for non-text output (modalities)"),
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "has tools"),
    ],
)
def test_options_the_batch_api_refuses(router: OpenRouterDouble, tmp_path: Path, options: Any, reason: str) -> None:
    g = grid(router, tmp_path / "s.sqlite", PROMPTS[:1], check_capabilities=False, **options)
    with pytest.raises(BatchRefusedError, match=re.escape(reason)) as info:
        list(g.run())
    assert len(info.value.cells) == 2
    assert submissions(router) == []
    assert router.chat_requests == []


def test_bad_deferred_settings_are_refused_before_any_request(router: OpenRouterDouble, tmp_path: Path) -> None:
    call = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key, check_capabilities=False)
    with pytest.raises(ValueError, match="deferred must be True, False or 'mixed'"):
        call.grid(PROMPTS, deferred="yes")
    with pytest.raises(ValueError, match="stream=True cannot be used with deferred=True"):
        call.grid(PROMPTS, deferred=True, stream=True)
    with pytest.raises(ValueError, match="poll_interval must be a positive number"):
        call.grid(PROMPTS, deferred=True, poll_interval=0)
    with pytest.raises(TypeError, match=r"deferred= is not an option of call\(\.\.\.\)"):
        call("hi", deferred=True)
    assert router.requests == []


# --------------------------------------------------------------------------------------------- failures
@pytest.mark.parametrize("retry", ["deferred", "normally"])
def test_a_failed_batch_and_per_cell_errors_are_retried(router: OpenRouterDouble, tmp_path: Path, retry: str) -> None:
    store = tmp_path / "s.sqlite"
    router.batches.end_next("expired", "Batch expired before completion")  # the first model's batch
    router.queue(Error(400, "This request was refused upstream"), model=MODELS[1])  # its first cell
    first = {(c.prompt_id, c.model): c for c in grid(router, store).run()}
    expired = [first[(i, MODELS[0])] for i in range(3)]
    for cell in expired:
        assert cell.error is not None
        assert cell.error.type == "BatchExpired"
        assert "expired: Batch expired before completion" in cell.error.message
        assert "run the grid again" in cell.error.message
    bad = first[(0, MODELS[1])]
    assert bad.error is not None
    assert bad.error.message == "This request was refused upstream"
    assert [first[(i, MODELS[1])].ok for i in (1, 2)] == [True, True]

    before = len(submissions(router))
    if retry == "deferred":
        second = list(grid(router, store).run())
        resent = [json.loads(p.body) for p in submissions(router)[before:]]
        assert sorted((b["model"], len(b["requests"])) for b in resent) == sorted([(MODELS[0], 3), (MODELS[1], 1)])
        assert router.chat_requests == []
    else:
        second = list(grid(router, store, deferred=False).run())
        assert len(submissions(router)) == before
        assert sorted((b["model"], b["messages"][-1]["content"]) for b in router.chat_requests) == sorted(
            [(MODELS[0], p) for p in PROMPTS] + [(MODELS[1], PROMPTS[0])]
        )
    assert len(second) == 6
    assert all(c.ok for c in second)
    assert sorted(c.from_store for c in second) == [False] * 4 + [True] * 2


def test_a_batch_that_fails_validation_fails_its_cells(router: OpenRouterDouble, tmp_path: Path) -> None:
    router.batches.end_next("failed", "Validation failed: something the docs do not list")
    cells = list(grid(router, tmp_path / "s.sqlite", PROMPTS[:1]).run())
    failed = [c for c in cells if not c.ok]
    assert [c.model for c in failed] == [MODELS[0]]
    assert failed[0].error is not None
    assert failed[0].error.type == "BatchFailed"
    assert "something the docs do not list" in failed[0].error.message


def test_a_refused_submission_is_retried_by_the_policy_or_fails_its_cells(
    router: OpenRouterDouble, tmp_path: Path
) -> None:
    store = tmp_path / "s.sqlite"
    router.batches.refuse_next(
        Error(429, "Too many batches", retry_after=0),  # retried by the retry policy...
        Error(402, "Insufficient credits"),  # ...which does not retry this: the first model's cells fail, unsent
    )
    cells = list(grid(router, store, PROMPTS[:2]).run())
    by_model = {m: [c for c in cells if c.model == m] for m in MODELS}
    for cell in by_model[MODELS[0]]:
        assert cell.error is not None
        assert (cell.error.type, cell.error.status) == ("PaymentRequiredError", 402)
        assert "Insufficient credits" in cell.error.message
    assert all(c.ok for c in by_model[MODELS[1]])
    assert [json.loads(p.body)["model"] for p in submissions(router)] == [MODELS[0], MODELS[0], MODELS[1]]
    assert [m for m, _ in stored_batches_models(store)] == [MODELS[1]]

    again = list(grid(router, store, PROMPTS[:2]).run())  # the failed cells are submitted again
    assert all(c.ok for c in again)
    assert [json.loads(b)["model"] for b in router.batches.submissions] == [MODELS[1], MODELS[0]]


def stored_batches_models(store: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(store) as db:
        return db.execute("SELECT model, cells FROM batches ORDER BY submitted").fetchall()


def test_max_cost_is_checked_at_batch_prices(router: OpenRouterDouble, tmp_path: Path) -> None:
    call = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key)
    forecast = call.grid(PROMPTS, max_tokens=50).forecast()
    assert forecast.expected
    assert forecast.high
    assert forecast.deferred_expected == pytest.approx(forecast.expected * wire.PRICE_SHARE)
    assert forecast.deferred_high == pytest.approx(forecast.high * wire.PRICE_SHARE)
    assert forecast.to_dict()["deferred"]["expected"] == pytest.approx(forecast.deferred_expected)
    assert "deferred (Batch API" in str(forecast)
    between = (forecast.expected + forecast.deferred_expected) / 2
    with pytest.raises(BudgetExceeded):
        list(call.grid(PROMPTS, max_tokens=50, max_cost=between, progress=False).run())
    assert router.chat_requests == []
    cells = list(grid(router, tmp_path / "s.sqlite", max_tokens=50, max_cost=between, force=True).run())
    assert len(cells) == 6


# --------------------------------------------------------------------------------------------- re-attaching
SCRIPT = """
import sys
from irouter import Call

base_url, api_key, store = sys.argv[1:4]
models = sys.argv[4:]
grid = Call(models, base_url=base_url, api_key=api_key).grid(
    [f"Prompt number {i}" for i in range(5)], store=store, progress=False, deferred=True, poll_interval=0.01
)
for cell in grid.run():
    print("CELL", cell.prompt_id, cell.model, flush=True)
"""


def stored_batches(store: Path) -> list[tuple[str, int]]:
    if not store.exists():
        return []
    try:
        with sqlite3.connect(store) as db:
            return db.execute("SELECT id, cells FROM batches").fetchall()
    except sqlite3.OperationalError:  # the table is not made yet
        return []


def test_a_killed_run_reattaches_and_never_submits_a_cell_twice(router: OpenRouterDouble, tmp_path: Path) -> None:
    store = tmp_path / "run.sqlite"
    router.batches.pause()  # the batches stay "validating" while the first process lives
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "IROUTER_"))}
    first = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, router.base_url, router.api_key, str(store), *MODELS],
        env={**env, "IROUTER_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(stored_batches(store)) < 2:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the batch ids were never stored"
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    stdout, _ = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert "CELL" not in stdout
    assert len(submissions(router)) == 2

    router.batches.resume()
    again = Call(list(MODELS), base_url=router.base_url, api_key=router.api_key).grid(
        [f"Prompt number {i}" for i in range(5)], store=store, progress=False, deferred=True, poll_interval=FAST
    )
    cells = list(again.run())
    assert len(cells) == 10
    assert all(c.ok for c in cells)
    assert {c.text for c in cells} == {f"You said: Prompt number {i}" for i in range(5)}
    assert len(submissions(router)) == 2  # re-attached: nothing submitted again
    assert sorted(submitted_ids(router).values()) == [1] * 10
    assert router.chat_requests == []
    assert sorted(n for _, n in stored_batches(store)) == [5, 5]


def test_a_normal_run_does_not_send_cells_held_by_a_batch(router: OpenRouterDouble, tmp_path: Path) -> None:
    """Cells inside an open batch belong to it: another process's normal run does not claim them."""
    from irouter._store import Store

    store = tmp_path / "s.sqlite"
    router.batches.pause()
    g = grid(router, store, PROMPTS[:1])
    it = g.run()
    import threading

    thread = threading.Thread(target=lambda: list(it), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while len(stored_batches(store)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    opened = Store(store)
    try:
        keys = [k for b in opened.batches() for k in opened.batch_keys(b["id"])]
        assert opened.claim(keys) == []
    finally:
        opened.close()
    router.batches.resume()
    thread.join(30)
    assert not thread.is_alive()


# --------------------------------------------------------------------------------------------- the CLI
def test_the_cli_runs_a_deferred_grid_and_lists_shows_and_deletes_batches(
    router: OpenRouterDouble,
    cli_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    source = tmp_path / "prompts.txt"
    source.write_text("\n".join(PROMPTS) + "\n")
    store = str(tmp_path / "run.sqlite")
    flags = [flag for m in MODELS for flag in ("-m", m)]
    out = run(cli_env, "grid", str(source), *flags, "--store", store, "--deferred", "-o", "poll_interval=0.01")
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["text"] for line in out.stdout.splitlines()].count("You said: Say hi.") == 2
    assert router.chat_requests == []
    assert len(submissions(router)) == 2

    listed = run(cli_env, "batches", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["id"] for r in rows) == sorted(router.batches.ids)
    assert {(r["status"], r["cells"]) for r in rows} == {("completed", 3)}
    kept = json.loads(run(cli_env, "batches", "--store", store, "--json").stdout)
    assert sorted(r["id"] for r in kept) == sorted(router.batches.ids)
    assert {(r["status"], r["collected"]) for r in kept} == {("completed", True)}
    text = run(cli_env, "batches").stdout
    assert all(batch_id in text for batch_id in router.batches.ids)

    first = rows[0]["id"]
    shown = run(cli_env, "batches", "show", first)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == first
    assert "results" not in json.loads(shown.stdout)
    with_results = json.loads(run(cli_env, "batches", "show", first, "--results").stdout)
    assert len(with_results["results"]) == 3

    deleted = run(cli_env, "batches", "delete", first)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, f"deleted {first}")
    assert first not in router.batches.ids
    gone = run(cli_env, "batches", "show", first)
    assert gone.returncode == 1
    assert "not found" in gone.stderr


def test_the_cli_refuses_to_delete_a_running_batch(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:  # noqa: F811
    router.batches.pause()
    headers = {"Authorization": f"Bearer {router.api_key}"}
    doc = sample("batch-chat-completions-doc-example.submit.request.json")
    url = router.base_url.replace("/api/v1", "/api/beta/batches")
    batch_id = httpx2.post(url, content=json.dumps(doc).encode(), headers=headers).json()["id"]
    out = run(cli_env, "batches", "delete", batch_id)
    assert out.returncode == 1
    assert "still running: only a finished batch can be deleted" in out.stderr
    assert batch_id in router.batches.ids
    usage = run(cli_env, "batches", "show")
    assert usage.returncode == 2
    assert "needs a batch id" in usage.stderr
