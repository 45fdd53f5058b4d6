"""Grids on Ray Data (`irouter.ray`): a real local Ray cluster (2 CPUs, started once for this module) against the
OpenRouter double. The workers get the double's URL and key through Ray's ``runtime_env``, never through pickles."""

from __future__ import annotations

import collections
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray.data")
pytest.importorskip("pyarrow")

import pyarrow as pa
import pyarrow.parquet as pq
import ray

import irouter.ray
from irouter.testing import OpenRouterDouble

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5"]
PRICES = (0.00000015, 0.0000006)
"""The double charges gpt-4o-mini's catalog prices, so every reported cost is within the worst case reserved."""


@pytest.fixture(scope="module")
def double() -> Iterator[OpenRouterDouble]:
    with OpenRouterDouble(prices=PRICES) as router:
        yield router


@pytest.fixture(scope="module")
def cluster(double: OpenRouterDouble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    env = {
        "OPENROUTER_BASE_URL": double.base_url,
        "OPENROUTER_API_KEY": double.api_key,
        "IROUTER_CACHE_DIR": str(tmp_path_factory.mktemp("ray-cache")),
        "RAY_AUTH_MODE": "disabled",
    }
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture
def router(double: OpenRouterDouble, cluster: None, monkeypatch: pytest.MonkeyPatch) -> OpenRouterDouble:
    """The module's double, emptied, with this process's environment pointing at it (as a user's would)."""
    double.reset()
    double.latency = 0.0
    double.prices = PRICES
    monkeypatch.setenv("OPENROUTER_BASE_URL", double.base_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", double.api_key)
    return double


def prompts(n: int, start: int = 0) -> Any:
    return ray.data.from_items([{"id": f"p{i}", "prompt": f"Question {i}?"} for i in range(start, start + n)])


def sent(router: OpenRouterDouble) -> collections.Counter[tuple[str, str]]:
    """(model, prompt) of every chat request the double received, counted."""
    bodies = [r for r in router.chat_requests if r is not None]  # a request cut off by a kill has no JSON body
    return collections.Counter((r["model"], r["messages"][-1]["content"]) for r in bodies)


def test_two_thousand_cells_times_two_models(router: OpenRouterDouble) -> None:
    answers = irouter.ray.grid(prompts(2000), MODELS, concurrency_per_worker=64, batch_size=250, temperature=0)
    rows = answers.take_all()

    assert len(rows) == 4000
    assert len({(r["id"], r["model"]) for r in rows}) == 4000  # every cell once
    assert set(rows[0]) == set(irouter.ray.COLUMNS)
    for row in rows:
        number = row["id"][1:]
        assert row["error"] is None
        assert row["text"] == f"You said: Question {number}?"
        assert row["served_model"] == row["model"]
        assert row["provider"]
        assert row["prompt_tokens"] > 0
        assert row["completion_tokens"] > 0
        expected = row["prompt_tokens"] * PRICES[0] + row["completion_tokens"] * PRICES[1]
        assert row["cost"] == pytest.approx(expected)
        assert row["requests"] == 1
        assert row["latency"] > 0
    counts = sent(router)
    assert len(counts) == 4000
    assert set(counts.values()) == {1}
    assert {r["temperature"] for r in router.chat_requests} == {0}


def test_a_killed_worker_does_not_send_finished_cells_again(router: OpenRouterDouble) -> None:
    router.latency = 0.02
    job = irouter.ray.Job()
    answers = irouter.ray.grid(prompts(1500), MODELS[:1], job=job, concurrency_per_worker=8, batch_size=100)
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(rows=answers.take_all()))
    runner.start()
    deadline = time.monotonic() + 300
    while job.report()["finished"] < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = next(iter(job.report()["workers"].values()))
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    runner.join(600)

    rows = result["rows"]
    assert len(rows) == 1500
    assert len({r["id"] for r in rows}) == 1500
    assert all(r["error"] is None and r["cost"] for r in rows)
    assert victim not in job.report()["workers"].values() or len(job.report()["workers"]) > 2  # a new worker came
    finished = job.finished()
    key_of = {(r["model"], f"Question {r['id'][1:]}?"): r["key"] for r in rows}
    late = [
        r
        for r in router.requests
        if r.path.endswith("/chat/completions")
        and r.json is not None
        and r.time > finished[key_of[(r.json["model"], r.json["messages"][-1]["content"])]]
    ]
    assert late == []  # no cell was sent after it had finished
    resent = [cell for cell, n in sent(router).items() if n > 1]
    assert len(resent) <= 8  # at most the killed worker's cells in flight
    assert any(r.time > killed_at for r in router.requests)  # the job went on after the kill


def test_max_cost_holds_for_the_whole_job(router: OpenRouterDouble) -> None:
    probe = irouter.ray.grid(prompts(1), MODELS[:1], max_tokens=5).take_all()[0]["cost"]  # what one cell costs
    router.reset()
    cap = round(probe * 150, 9)
    job = irouter.ray.Job(max_cost=cap)
    answers = irouter.ray.grid(
        prompts(600), MODELS[:1], job=job, concurrency_per_worker=16, batch_size=50, max_tokens=5
    )
    rows = answers.take_all()

    assert len(rows) == 600
    spent = sum(r["cost"] or 0.0 for r in rows)
    assert spent <= cap  # never above the cap, across both workers
    assert spent >= 0.9 * cap  # and cells were refused only once the cap was nearly reached
    assert job.report()["spent"] == pytest.approx(spent)
    refused = [r for r in rows if r["error"] == "BudgetExceeded"]
    answered = [r for r in rows if r["error"] is None]
    assert refused
    assert len(refused) + len(answered) == 600
    assert f"max_cost=${cap:g}" in refused[0]["error_message"]
    assert len(router.chat_requests) == len(answered)  # refused cells were never sent


def test_a_large_budget_refuses_nothing(router: OpenRouterDouble) -> None:
    router.prices = (0.000001, 0.000002)  # above the catalog's: answers cost more than the worst case they held
    rows = [{"id": f"q{i}", "prompt": f"What is {i} + {i}? Answer with the number only."} for i in range(200)]
    models = [MODELS[0], "meta-llama/llama-3.3-70b-instruct"]
    job = irouter.ray.Job(max_cost=1.0)
    answers = irouter.ray.grid(ray.data.from_items(rows), models, job=job, concurrency_per_worker=64, max_tokens=20)
    out = answers.take_all()
    assert [r["error_message"] for r in out if r["error"]] == []
    assert len(router.chat_requests) == 400
    assert job.report()["spent"] == pytest.approx(sum(r["cost"] for r in out))
    assert job.report()["granted"] == pytest.approx(0.0, abs=1e-12)  # every grant settled


def test_resume_sends_only_the_missing_cells(router: OpenRouterDouble, tmp_path: Path) -> None:
    data = prompts(400)
    first = irouter.ray.grid(data, MODELS, concurrency_per_worker=16, batch_size=50)
    saved = 0
    for number, batch in enumerate(first.iter_batches(batch_format="pyarrow", batch_size=None)):
        pq.write_table(batch, tmp_path / f"part-{number}.parquet")
        saved += batch.num_rows
        if saved >= 300:
            break  # the run stops here (a crash, Ctrl-C): what was written is kept
    time.sleep(1.0)  # whatever was still in flight ends
    kept = pa.concat_tables([pq.read_table(p) for p in sorted(tmp_path.glob("*.parquet"))])
    assert 300 <= kept.num_rows < 800
    router.reset()

    second = irouter.ray.grid(data, MODELS, concurrency_per_worker=16, batch_size=50, resume_from=str(tmp_path))
    rows = second.take_all()

    old = {(i, m) for i, m in zip(kept.column("id").to_pylist(), kept.column("model").to_pylist(), strict=True)}
    new = {(r["id"], r["model"]) for r in rows}
    assert not old & new
    assert len(old | new) == 800
    assert sent(router) == collections.Counter({(m, f"Question {i[1:]}?"): 1 for i, m in new})


def test_failed_cells_are_sent_again_on_resume(router: OpenRouterDouble, tmp_path: Path) -> None:
    from irouter.testing import Error

    router.queue(Error(400, "bad request"), model=MODELS[0])
    data = prompts(1)
    irouter.ray.grid(data, MODELS[:1], max_retries=0).write_parquet(str(tmp_path))
    assert [r["error"] for r in ray.data.read_parquet(str(tmp_path)).take_all()] == ["BadRequestError"]
    rows = irouter.ray.grid(data, MODELS[:1], resume_from=str(tmp_path)).take_all()
    assert [r["text"] for r in rows] == ["You said: Question 0?"]
    assert len(router.chat_requests) == 2


def test_rpm_is_one_limit_for_the_whole_job(router: OpenRouterDouble) -> None:
    started = time.monotonic()
    rows = irouter.ray.grid(prompts(40), MODELS[:1], rpm=600, batch_size=5).take_all()
    assert len(rows) == 40
    times = sorted(r.time for r in router.requests if r.path.endswith("/chat/completions"))
    # 600 a minute with a second's burst (10): 40 requests across both workers span at least 3 seconds
    assert times[-1] - times[0] >= 2.5
    assert time.monotonic() - started >= 2.5


def test_typed_values_come_back_as_json(router: OpenRouterDouble) -> None:
    from dataclasses import make_dataclass

    answer = make_dataclass("Answer", [("number", int)])  # real annotations: it is pickled by value for the workers

    router.queue('{"number": 7}', '{"number": 7}', '{"number": 7}', model=MODELS[0])
    rows = irouter.ray.grid(prompts(3), MODELS[:1], response_format=answer).take_all()
    assert [json.loads(r["value"]) for r in rows] == [{"number": 7}] * 3
    assert all(r["error"] is None for r in rows)
    assert all("response_format" in body for body in router.chat_requests)


def test_the_key_is_never_pickled(router: OpenRouterDouble) -> None:
    from ray import cloudpickle

    key = router.api_key.encode()
    job = irouter.ray.Job(max_cost=1.0)
    worker = irouter.ray.GridWorker(MODELS, job=job, temperature=0)
    assert key not in cloudpickle.dumps(worker)
    assert key not in cloudpickle.dumps(job)
    again = cloudpickle.loads(cloudpickle.dumps(worker))
    assert key not in repr(again).encode()
    answers = irouter.ray.grid(prompts(2), MODELS, job=job)
    op = answers._logical_plan.dag  # what Ray sends to the workers: the class and its constructor arguments
    assert key not in cloudpickle.dumps((op.fn, op.fn_constructor_args, op.fn_constructor_kwargs))
    assert op.ray_remote_args["runtime_env"]["env_vars"]["OPENROUTER_API_KEY"] == router.api_key  # the environment
    assert len(answers.take_all()) == 4


def test_bad_input_raises_before_anything_is_sent(router: OpenRouterDouble) -> None:
    with pytest.raises(ValueError, match="concurrency_per_worker"):
        irouter.ray.grid(prompts(2), MODELS, concurrency_per_worker=0)
    with pytest.raises(ValueError, match="models"):
        irouter.ray.grid(prompts(2), [])
    with pytest.raises(TypeError, match=r"ray\.data\.Dataset"):
        irouter.ray.grid([{"id": 1, "prompt": "x"}], MODELS)
    with pytest.raises(ValueError, match="max_cost"):
        irouter.ray.Job(max_cost=-1)
    with pytest.raises(ValueError, match="rpm"):
        irouter.ray.Job(rpm=0)
    with pytest.raises(ValueError, match="tpm"):
        irouter.ray.Job(tpm={"openai/gpt-4o-mini": -5})
    no_ids = ray.data.from_items([{"text": "hello"}])
    with pytest.raises(Exception, match="no 'id' column"):
        irouter.ray.grid(no_ids, MODELS).take_all()
    assert router.chat_requests == []
