"""``irouter compare`` as a real subprocess against the OpenRouter double: answers, then a table of rank, score, cost
and latency per model; ``--judge`` panels, ``--json``, failures and their exit codes, usage errors."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from typing import Any

from irouter.testing import Error, OpenRouterDouble, Text

from . import test_cli
from .test_cli import run

cli_env = test_cli.env
"""The fixture of tests/test_cli.py: the double's URL and key, and a tmp home, cache and config."""

A, B = "openai/gpt-4o-mini", "meta-llama/llama-3.3-70b-instruct"
J, K = "anthropic/claude-sonnet-4.5", "moonshotai/kimi-k2:free"


def scores(body: dict[str, Any]) -> Text:
    """A judge that gives the answer mentioning Paris 9 and any other 2, whichever order it sees them in."""
    shown = re.findall(r'<answer label="[A-Z]+"[^>]*>\n(.*?)\n</answer>', body["messages"][-1]["content"], re.S)
    verdict = {
        chr(65 + i): {"reason": "right" if "Paris" in t else "wrong", "score": 9 if "Paris" in t else 2}
        for i, t in enumerate(shown)
    }
    return Text(json.dumps(verdict))


def table(stdout: str) -> list[list[str]]:
    """The rows of the printed table (from its header line on, up to the first line that is not a row)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("rank ", "model ")))
    rows = []
    for line in lines[start:]:
        if not line.strip() or line.startswith(("judged by", "total", "failed:")):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_compare_prints_answers_ranking_cost_and_latency(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    router.queue("Lyon.", model=A)
    router.queue("Paris.", model=B)
    router.queue(scores, scores, model=J)
    out = run(cli_env, "compare", "Capital of France?", "-m", A, "-m", B, "--judge", J)
    assert out.returncode == 0, out.stderr
    assert f"## {A}\n\nLyon." in out.stdout
    assert f"## {B}\n\nParis." in out.stdout
    rows = table(out.stdout)
    assert rows[0] == ["rank", "model", "score", "cost", "latency", "tokens", "reason"]
    assert [r[:3] for r in rows[1:]] == [["1", B, "9.00"], ["2", A, "2.00"]]  # best first
    for row in rows[1:]:
        assert re.fullmatch(r"\$\d+\.\d{6}", row[3])
        assert re.fullmatch(r"\d+\.\d\d s", row[4])
        assert int(row[5]) > 0
    assert rows[1][6] == "right"  # the same reason from both passes, once
    assert re.search(rf"^judged by {re.escape(J)} \(2 passes each\), \$\d+\.\d{{6}}$", out.stdout, re.M)
    total = float(re.search(r"^total \$(\d+\.\d{6})$", out.stdout, re.M)[1])  # type: ignore[index]
    assert total > sum(float(r[3][1:]) for r in rows[1:])  # the judge's requests count in the total
    judged = [b for b in router.chat_requests if b["model"] == J]
    assert len(judged) == 2
    assert all(A not in json.dumps(b["messages"]) for b in judged)  # blind by default


def test_compare_without_a_judge_and_as_json(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    out = run(cli_env, "compare", "Capital of France?", "-m", A, "-m", B)
    assert out.returncode == 0, out.stderr
    assert table(out.stdout)[0] == ["model", "cost", "latency", "tokens"]
    router.queue(scores, scores, model=J)
    router.queue(scores, scores, model=K)
    router.queue("Paris.", model=A)
    out = run(cli_env, "compare", "Capital of France?", "-m", A, "-m", B, "--judge", J, "--judge", K, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["answers"] == {A: "Paris.", B: "You said: Capital of France?"}
    assert [(r["model"], r["rank"], r["score"]) for r in report["models"]] == [(A, 1, 9.0), (B, 2, 2.0)]
    assert report["review"]["judges"] == [J, K]
    assert len(report["review"]["verdicts"]) == 4
    assert report["cost"] > sum(r["cost"] for r in report["models"])


def test_names_no_swap_and_synthesis(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    router.queue(scores, model=J)
    router.queue("Paris, says everyone.", model=K)
    out = run(cli_env, "compare", "Capital?", "-m", A, "-m", B, "--judge", J, "--names", "--no-swap", "--synthesize", K)
    assert out.returncode == 0, out.stderr
    judged = [b for b in router.chat_requests if b["model"] == J]
    assert len(judged) == 1
    assert f'model="{A}"' in judged[0]["messages"][-1]["content"]
    assert "## synthesis\n\nParis, says everyone." in out.stdout


def test_failed_model_and_failed_judge_set_the_exit_code(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    router.queue(Error(400, "Provider returned error"), model=B)
    router.queue(Error(400, "judge is down"), model=J)
    out = run(cli_env, "compare", "Capital of France?", "-m", A, "-m", B, "--judge", J)
    assert out.returncode == 1, out.stderr
    assert f"## {A}" in out.stdout
    assert f"## {B}" not in out.stdout
    assert f"failed: {J}: BadRequestError" in out.stdout
    assert f"irouter: error: {B}: " in out.stderr
    rows = table(out.stdout)
    assert rows[-1][:2] == ["-", B]
    assert rows[-1][-1] == "failed"


def test_usage_errors(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    out = run(cli_env, "compare", "Hi", "-m", A)
    assert out.returncode == 2
    assert "at least two models" in out.stderr
    out = run(cli_env, "compare", "-m", A, "-m", B)
    assert out.returncode == 2
    assert "give a prompt" in out.stderr
    assert router.chat_requests == []


def test_ctrl_c_stops_the_judges(router: OpenRouterDouble, cli_env: dict[str, str]) -> None:
    """SIGINT while a panel judges (one judge slow, one waiting to retry): exit 130 with one line, without waiting
    for them."""
    router.queue(Text("{}", delay=60), Text("{}", delay=60), model=J)
    router.queue(*[Error(503, "busy", retry_after=2)] * 6, model=K)
    command = [sys.executable, "-m", "irouter", "compare", "Capital?", "-m", A, "-m", B, "--judge", J, "--judge", K]
    proc = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def judged(judge: str) -> int:
        return sum(1 for b in router.chat_requests if b["model"] == judge)

    deadline = time.monotonic() + 30
    while (judged(J) < 2 or judged(K) < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)  # well before the judge's 60 s answer
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "irouter: stopped"
