"""``irouter grid`` as a real subprocess against the OpenRouter double: the forecast with ``--dry-run`` (nothing
sent), a run, a re-run that sends nothing new, failed cells and their exit code, prompts files, usage errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from irouter.testing import Error, OpenRouterDouble

from . import test_cli
from .test_cli import one_error_line, run

cli_env = test_cli.env
"""The fixture of tests/test_cli.py: the double's URL and key, and a tmp home, cache and config."""

MODELS = ("openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct")
"""Two slugs the double's catalog prices, so the forecast has figures."""
PROMPTS = ["What is 2 + 2?", "Name a colour.", "Say hi."]


def model_flags(*models: str) -> list[str]:
    return [flag for m in models or MODELS for flag in ("-m", m)]


def prompts_file(folder: Path, rows: list[Any] | None = None, name: str = "prompts.jsonl") -> str:
    rows = rows if rows is not None else [{"id": f"q{i}", "prompt": p} for i, p in enumerate(PROMPTS)]
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sent(router: OpenRouterDouble) -> list[tuple[str, Any]]:
    """(model, last user message) of every chat request the double received, sorted."""
    return sorted((b["model"], b["messages"][-1]["content"]) for b in router.chat_requests)


def test_dry_run_prints_the_forecast_and_sends_nothing(
    router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path
) -> None:
    source = prompts_file(tmp_path)
    out = run(cli_env, "grid", source, *model_flags(), "--store", str(tmp_path / "run.sqlite"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert router.chat_requests == []
    for model in MODELS:
        assert model in out.stdout
    out = run(cli_env, "grid", source, *model_flags(), "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    forecast = json.loads(out.stdout)
    text = json.dumps(forecast)
    for model in MODELS:
        assert model in text
    assert router.chat_requests == []


def test_run_then_rerun_sends_nothing_new(router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path) -> None:
    source, store, answers = prompts_file(tmp_path), tmp_path / "run.sqlite", tmp_path / "answers.jsonl"
    args = ["grid", source, *model_flags(), "--store", str(store), "--output", str(answers), "--max-cost", "5"]
    out = run(cli_env, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # the cells went to --output
    assert sent(router) == sorted((m, p) for m in MODELS for p in PROMPTS)
    cells = lines(answers)
    assert sorted((c["prompt_id"], c["model"]) for c in cells) == sorted(
        (f"q{i}", m) for i in range(len(PROMPTS)) for m in MODELS
    )
    for cell in cells:
        prompt = PROMPTS[int(cell["prompt_id"][1:])]
        assert cell["text"] == f"You said: {prompt}"
        assert cell["error"] is None
        assert cell["from_store"] is False
    billed = sum(g["total_cost"] for g in router.generations.values())
    assert sum(c["cost"] for c in cells) == pytest.approx(billed)
    for model in MODELS:  # the summary on stderr: one row per model
        assert any(line.startswith(model) for line in out.stderr.splitlines()), out.stderr

    out = run(cli_env, *args)  # the same command again: every cell comes from the store
    assert out.returncode == 0, out.stderr
    assert len(router.chat_requests) == len(MODELS) * len(PROMPTS)
    again = lines(answers)
    assert all(c["from_store"] for c in again)
    key = ("prompt_id", "model", "text", "cost")
    assert sorted(tuple(c[k] for k in key) for c in again) == sorted(tuple(c[k] for k in key) for c in cells)


def test_cells_go_to_stdout_without_output(router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path) -> None:
    text = tmp_path / "prompts.txt"
    text.write_text("first prompt\n\nsecond prompt\n")
    out = run(cli_env, "grid", str(text), "-m", MODELS[0], "--no-stats")
    assert (out.returncode, out.stderr) == (0, "")
    cells = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(c["text"] for c in cells) == ["You said: first prompt", "You said: second prompt"]
    assert sent(router) == [(MODELS[0], "first prompt"), (MODELS[0], "second prompt")]


def test_prompts_from_stdin(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    out = run(cli_env, "grid", "-", "-m", MODELS[0], "--no-stats", stdin='"one"\n{"id": "x", "prompt": "two"}\n')
    assert out.returncode == 0, out.stderr
    cells = {c["text"]: c for c in map(json.loads, out.stdout.splitlines())}
    assert set(cells) == {"You said: one", "You said: two"}
    assert cells["You said: two"]["prompt_id"] == "x"
    out = run(cli_env, "grid", "-", "-m", MODELS[0], "--no-stats", stdin="plain line\n")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["text"] == "You said: plain line"


def test_a_system_prompt_and_options_go_with_every_cell(
    router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path
) -> None:
    source = prompts_file(tmp_path)
    out = run(cli_env, "grid", source, "-m", MODELS[0], "-s", "Be brief.", "-o", "temperature=0", "--no-stats")
    assert out.returncode == 0, out.stderr
    assert len(router.chat_requests) == len(PROMPTS)
    for body in router.chat_requests:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert body["temperature"] == 0


def test_failed_cells_are_values_and_set_the_exit_code(
    router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path
) -> None:
    router.queue(Error(400, "Bad request for this one"), model=MODELS[1])
    source, store, answers = prompts_file(tmp_path, PROMPTS[:1]), tmp_path / "run.sqlite", tmp_path / "out.jsonl"
    args = ["grid", source, *model_flags(), "--store", str(store), "--output", str(answers)]
    out = run(cli_env, *args)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    cells = {c["model"]: c for c in lines(answers)}
    assert cells[MODELS[0]]["error"] is None
    assert cells[MODELS[1]]["text"] is None
    assert cells[MODELS[1]]["error"]["status"] == 400
    assert "Bad request for this one" in cells[MODELS[1]]["error"]["message"]
    assert len(router.chat_requests) == 2

    out = run(cli_env, *args, "--no-retry")  # failed cells kept as they were: nothing sent, still failing
    assert out.returncode == 1, out.stderr
    assert len(router.chat_requests) == 2
    out = run(cli_env, *args)  # failed cells are sent again (only those)
    assert out.returncode == 0, out.stderr
    assert [b["model"] for b in router.chat_requests[2:]] == [MODELS[1]]
    assert all(c["error"] is None for c in lines(answers))


def test_a_forecast_over_max_cost_is_refused_before_sending(
    router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path
) -> None:
    source = prompts_file(tmp_path)
    out = run(cli_env, "grid", source, *model_flags(), "--max-cost", "0.000000001")
    line = one_error_line(out, 4, contains="the forecast expects $0.00")
    assert "more than --max-cost 1e-09: nothing was sent" in line
    assert "--force" in line
    assert router.chat_requests == []
    out = run(cli_env, "grid", source, *model_flags(), "--max-cost", "0.000000001", "--force", "--no-stats")
    assert out.returncode == 4, out.stderr  # forced: it runs, and the hard cap refuses every request
    assert router.chat_requests == []  # any request would cost more than the cap


def test_usage_errors_send_nothing(router: OpenRouterDouble, cli_env: dict[str, str], tmp_path: Path) -> None:
    one_error_line(run(cli_env, "grid", str(tmp_path / "missing.jsonl"), "-m", MODELS[0]), 2, contains="missing")
    bad = prompts_file(tmp_path, [{"prompt": "fine"}, {"text": "no prompt key"}])
    one_error_line(run(cli_env, "grid", bad, "-m", MODELS[0]), 2, contains="line 2")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('"fine"\n{not json\n')
    one_error_line(run(cli_env, "grid", str(broken), "-m", MODELS[0]), 2, contains="line 2: not JSON")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    one_error_line(run(cli_env, "grid", str(empty), "-m", MODELS[0]), 2, contains="no prompts")
    source = prompts_file(tmp_path)
    one_error_line(run(cli_env, "grid", source, "-m", MODELS[0], "--concurrency", "0"), 2, contains="concurrency")
    (tmp_path / "notes.txt").write_text("not a store")
    args = ["grid", source, "-m", MODELS[0], "--store", str(tmp_path / "notes.txt")]
    one_error_line(run(cli_env, *args), 2, contains="notes.txt cannot be used as an irouter store")
    assert router.chat_requests == []


def test_ctrl_c_keeps_the_finished_cells(cli_env: dict[str, str], tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 with one line; the same command again sends only the cells not finished."""
    prompts = [f"prompt {i}" for i in range(40)]
    source = prompts_file(tmp_path, prompts)
    store = tmp_path / "run.sqlite"
    with OpenRouterDouble(latency=0.2) as router:
        cli_env = {**cli_env, "OPENROUTER_BASE_URL": router.base_url}
        args = ["grid", source, "-m", MODELS[0], "--store", str(store), "--concurrency", "4", "--no-stats"]
        command = [sys.executable, "-m", "irouter", *args]
        proc = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while len(router.chat_requests) < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1] == (
            f"irouter: stopped; the cells that finished are kept in {store}: run the same command again to go on"
        )
        first = [b["messages"][-1]["content"] for b in router.chat_requests]
        finished = {json.loads(line)["text"].removeprefix("You said: ") for line in stdout.splitlines()}
        out = run(cli_env, *args, timeout=60)
        assert out.returncode == 0, out.stderr
        second = [b["messages"][-1]["content"] for b in router.chat_requests[len(first) :]]
        assert not finished & set(second)  # a finished cell is never sent again
        assert len(set(first) & set(second)) <= 4  # only cells in flight (at most --concurrency) are sent again
        assert sorted(set(first) | set(second)) == sorted(prompts)
        assert len(second) == len(set(second))
        assert sorted(json.loads(line)["text"] for line in out.stdout.splitlines()) == sorted(
            f"You said: {p}" for p in prompts
        )
