"""The grid's hard guarantees, with real processes on one store against the OpenRouter double (real HTTP):

* ``kill -9`` mid-run loses no finished cell: run again, and only the cells that were in flight are sent again;
* two processes running the same grid on one store at once never send a cell twice, and both end complete;
* Ctrl-C (SIGINT) loses only the cells in flight, and gives their claims back at once.

A cell is identified in the double's request log by (model, prompt text): every prompt here is different.

"In flight at the kill" is defined from what the killed run itself reported: a cell whose request the double
received during the first run, but which the first run never yielded (each yielded cell is written to a log file
and flushed before the next). Such a cell may or may not have been committed to the store when the process died,
so it is sent again or comes from the store -- exactly one of the two. A cell the first run yielded is committed,
so it is never sent again. There are never more cells in flight than ``concurrency``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from irouter.testing import OpenRouterDouble

MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct")
CONCURRENCY = 8
TIMEOUT = 120

SCRIPT = """
import json, sys
from irouter import Call

base_url, api_key, store, n, concurrency, log = sys.argv[1:7]
models = sys.argv[7:]
prompts = [{"id": f"p{i}", "prompt": f"Prompt number {i}"} for i in range(int(n))]
grid = Call(models, base_url=base_url, api_key=api_key).grid(
    prompts, store=store, concurrency=int(concurrency), progress=False
)
with open(log, "a") as f:
    try:
        for cell in grid.run():
            f.write(json.dumps({"prompt_id": cell.prompt_id, "model": cell.model, "text": cell.text,
                                "from_store": cell.from_store, "ok": cell.ok}) + "\\n")
            f.flush()
    except KeyboardInterrupt:
        print("INTERRUPTED", flush=True)
        sys.exit(130)
records = grid.results().records()
print("RESULTS " + json.dumps([[r["prompt_id"], r["model"], r["text"], r["error"]] for r in records]), flush=True)
"""

Cell = tuple[str, str]
"""(model, prompt text)."""


def prompt(i: int) -> str:
    return f"Prompt number {i}"


def every_cell(n: int) -> set[Cell]:
    return {(m, prompt(i)) for i in range(n) for m in MODELS}


def requested(router: OpenRouterDouble, start: int = 0, stop: int | None = None) -> list[Cell]:
    return [(b["model"], b["messages"][-1]["content"]) for b in router.chat_requests[start:stop]]


def logged(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start(router: OpenRouterDouble, store: Path, n: int, log: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "IROUTER_"))}
    args = [router.base_url, router.api_key, str(store), str(n), str(CONCURRENCY), str(log), *MODELS]
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, *args],
        env={**env, "PYTHONUNBUFFERED": "1", "IROUTER_CACHE_DIR": str(store.parent / "cache")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> list[list[Any]]:
    """Wait for a run to end well; its final ``results()``, one [prompt id, model, text, error] per cell."""
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    line = next(line for line in stdout.splitlines() if line.startswith("RESULTS "))
    results: list[list[Any]] = json.loads(line.removeprefix("RESULTS "))
    return results


def complete(results: list[list[Any]], n: int) -> None:
    """Every cell of the grid, in input order, answered."""
    assert [(r[0], r[1]) for r in results] == [(f"p{i}", m) for i in range(n) for m in MODELS]
    assert all(r[3] is None for r in results)
    assert all(r[2] == f"You said: {prompt(int(r[0][1:]))}" for r in results)


def wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def interrupted_then_resumed(tmp_path: Path, sig: signal.Signals) -> None:
    """Run a 200-cell grid, stop it with ``sig`` mid-run, run it again; check what each run sent."""
    n = 100
    store, log1, log2 = tmp_path / "run.sqlite", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    with OpenRouterDouble(latency=0.2) as router:
        first = start(router, store, n, log1)
        wait_for(lambda: len(router.chat_requests) >= 80 and len(logged(log1)) >= 40)
        first.send_signal(sig)
        stdout, stderr = first.communicate(timeout=TIMEOUT)
        if sig == signal.SIGKILL:
            assert first.returncode == -signal.SIGKILL
        else:
            assert (first.returncode, stdout.strip()) == (130, "INTERRUPTED"), stderr
        sent1 = requested(router)
        yielded1 = {(c["model"], f"Prompt number {c['prompt_id'][1:]}") for c in logged(log1)}
        assert len(sent1) == len(set(sent1))  # no cell twice within the run
        assert yielded1 <= set(sent1)
        assert len(sent1) < 2 * n  # it was stopped mid-run

        complete(finish(start(router, store, n, log2)), n)
        sent2 = requested(router, len(sent1))
        assert len(sent2) == len(set(sent2))
        resent = set(sent1) & set(sent2)
        in_flight = set(sent1) - yielded1
        assert resent <= in_flight  # a cell the first run finished is never sent again
        # Sent again: only cells whose answer never reached the store, so at most one per slot in flight. (A cell
        # can be stored but not yet yielded at the kill: ``in_flight`` itself may hold one or two more.)
        assert len(resent) <= CONCURRENCY
        assert set(sent1) | set(sent2) == every_cell(n)
        second = logged(log2)
        from_store = {(c["model"], f"Prompt number {c['prompt_id'][1:]}") for c in second if c["from_store"]}
        assert from_store == set(sent1) - resent  # each cell sent in the first run: from the store or sent again
        assert len(second) == 2 * n


@pytest.mark.slow
def test_kill_9_mid_run_loses_no_finished_cell(tmp_path: Path) -> None:
    interrupted_then_resumed(tmp_path, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_loses_only_cells_in_flight(tmp_path: Path) -> None:
    interrupted_then_resumed(tmp_path, signal.SIGINT)


@pytest.mark.slow
def test_two_processes_on_one_store_send_each_cell_once(tmp_path: Path) -> None:
    n = 100
    store = tmp_path / "run.sqlite"
    with OpenRouterDouble(latency=0.2) as router:  # slow enough that both processes overlap for seconds
        procs = [start(router, store, n, tmp_path / f"log{i}.jsonl") for i in range(2)]
        for proc in procs:
            complete(finish(proc), n)
        counts = Counter(requested(router))
        assert set(counts) == every_cell(n)
        assert set(counts.values()) == {1}  # no cell sent twice
        sent_by = [
            sum(1 for c in logged(tmp_path / f"log{i}.jsonl") if not c["from_store"]) for i in range(2)
        ]  # cells each process sent itself
        assert sum(sent_by) == 2 * n
        assert all(sent_by), sent_by  # both did part of the work
