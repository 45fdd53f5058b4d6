"""Shared plumbing for the benchmarks: the server subprocess, the irouter 0.3.1 venv, drivers, tables.

Everything that is timed runs in a *driver* subprocess (``bench/driver.py``), one per client, so that

* the OpenRouter double (its own subprocess, see `double_server`) never spends CPU inside the timed process,
* every client starts from a fresh interpreter (no shared imports, pools or caches between clients),
* irouter 0.3.1 can run from its own virtualenv with exactly the same measuring code as the others.

The driver prints one ``BENCH_RESULT {json}`` line that `run_driver` parses.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DRIVER = BENCH_DIR / "driver.py"
RESULT_MARK = "BENCH_RESULT "

OLD_VERSION = "0.3.1"
OLD_VENV = Path(os.environ.get("BENCH_031_VENV", REPO / ".bench-venv-031"))
"""Where irouter 0.3.1 lives (override with ``BENCH_031_VENV``); ``.bench-venv*/`` is gitignored."""
OLD_REQUIREMENTS = (f"irouter=={OLD_VERSION}", "fastprogress", "python-dotenv")
"""fastprogress: 0.3.1 imports it lazily on its multi-model path, which crashes without it."""


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ interpreters


@dataclass(frozen=True)
class Interpreter:
    """A Python that a driver runs under, and the irouter it imports."""

    label: str
    python: str


def current() -> Interpreter:
    """This venv's Python: the irouter of this repository (editable install) and the ``openai`` SDK."""
    return Interpreter("irouter (this repo)", sys.executable)


def _venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed_irouter(python: str) -> str | None:
    """The irouter version ``python`` imports, or ``None`` when it has none."""
    code = "import importlib.metadata as m; print(m.version('irouter'))"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=BENCH_DIR, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def ensure_old_venv(path: Path = OLD_VENV) -> Interpreter:
    """The irouter 0.3.1 interpreter; creates the venv and pip-installs 0.3.1 into it when missing.

    Raises ``RuntimeError`` (with pip's output) when it cannot be set up, e.g. without access to PyPI.
    """
    python = _venv_python(path)
    if not python.exists():
        log(f"creating {path} for irouter {OLD_VERSION} ...")
        venv.create(path, with_pip=True, clear=True)
    if installed_irouter(str(python)) != OLD_VERSION:
        log(f"pip install {' '.join(OLD_REQUIREMENTS)} into {path} ...")
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *OLD_REQUIREMENTS],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 or installed_irouter(str(python)) != OLD_VERSION:
            raise RuntimeError(f"could not install irouter {OLD_VERSION} into {path}:\n{proc.stdout}{proc.stderr}")
    return Interpreter(f"irouter {OLD_VERSION}", str(python))


def old_or_none(enabled: bool) -> Interpreter | None:
    """`ensure_old_venv` unless disabled; on failure logs why and returns ``None`` (its columns read n/a)."""
    if not enabled:
        return None
    try:
        return ensure_old_venv()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        log(f"irouter {OLD_VERSION} unavailable, its columns will read n/a: {exc}")
        return None


# ------------------------------------------------------------------------------------------------ the server


@dataclass(frozen=True)
class Server:
    """Where the OpenRouter double listens, and its process id (to read its CPU time)."""

    base_url: str
    api_key: str
    pid: int = 0


PYCACHE = Path(tempfile.gettempdir()) / "irouter-bench-pycache"
"""Where subprocesses keep their bytecode (``PYTHONPYCACHEPREFIX``), so nothing is written into ``src/``."""


def clean_env() -> dict[str, str]:
    """The environment for subprocesses: no OpenRouter/OpenAI settings leaking in from the shell, and bytecode
    caching on for every module alike (an editable install with ``PYTHONDONTWRITEBYTECODE=1`` would otherwise
    recompile irouter's own modules on every import while site-packages keep the ``.pyc`` pip wrote)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENROUTER_", "OPENAI_"))}
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


PACED_DOUBLE = """
import dataclasses, sys, time
from irouter.testing import OpenRouterDouble
double = OpenRouterDouble(api_key=None, latency=float(sys.argv[1]))
echo = double.default
double.default = lambda request: dataclasses.replace(echo(request), chunk_delay=float(sys.argv[2]))
double.start()
print(f"OPENROUTER_BASE_URL={double.base_url}", flush=True)
print(f"OPENROUTER_API_KEY={double.api_key}", flush=True)
while True:
    time.sleep(3600)
"""
"""The same double, its default (echo) replies streamed with ``chunk_delay`` seconds between chunks (the
``python -m irouter.testing`` command line has no flag for it)."""


@contextmanager
def double_server(latency: float, python: str = sys.executable, chunk_delay: float = 0.0) -> Iterator[Server]:
    """Run ``python -m irouter.testing --latency ... --any-key --port 0`` in its own process.

    The double is a separate process so its CPU (JSON parsing, keep-alive writes, token counting) never counts
    against the client being measured. It keeps every request it received, so each driver gets a fresh one.
    With ``chunk_delay`` it runs `PACED_DOUBLE` instead: streamed replies then come ``chunk_delay`` seconds
    apart rather than back to back.
    """
    cmd = [python, "-m", "irouter.testing", "--latency", str(latency), "--any-key", "--port", "0"]
    if chunk_delay:
        cmd = [python, "-c", PACED_DOUBLE, str(latency), str(chunk_delay)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=clean_env())
    try:
        found: dict[str, str] = {}
        assert proc.stdout is not None
        while len(found) < 2:
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise RuntimeError(f"the OpenRouter double did not start: {err.strip()}")
            key, sep, value = line.strip().partition("=")
            if sep and key in ("OPENROUTER_BASE_URL", "OPENROUTER_API_KEY"):
                found[key] = value
        yield Server(found["OPENROUTER_BASE_URL"], found["OPENROUTER_API_KEY"], proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------------------------ drivers


def run_driver(python: str, args: Sequence[str], timeout: float = 300.0) -> Any:
    """Run ``driver.py`` under ``python`` and return the JSON it reports (``RuntimeError`` when it fails)."""
    cmd = [python, str(DRIVER), *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCH_DIR, env=clean_env(), check=False
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    raise RuntimeError(f"driver failed ({proc.returncode}): {' '.join(args[:3])}\n{tail}")


def drive_against_server(python: str, latency: float, args: Sequence[str], chunk_delay: float = 0.0) -> Any:
    """`run_driver` with a fresh double (at ``latency`` seconds) whose URL, key and process id are passed on."""
    with double_server(latency, chunk_delay=chunk_delay) as server:
        server_args = ["--base-url", server.base_url, "--api-key", server.api_key, "--server-pid", str(server.pid)]
        return run_driver(python, [*args, *server_args])


@dataclass(frozen=True)
class Column:
    """One client in a results table: which interpreter runs the driver with which ``--client``."""

    key: str
    label: str
    python: str
    client: str
    sizes: tuple[int, ...]


def measure(bench: str, columns: Sequence[Column], latency: float, extra: Sequence[str]) -> dict[str, Any]:
    """Run ``driver.py <bench>`` once per column, each against its own fresh double; ``None`` for failures."""
    results: dict[str, Any] = {}
    for col in columns:
        if not col.sizes:
            results[col.key] = None
            continue
        args = [bench, "--client", col.client, "--sizes", ",".join(map(str, col.sizes)), *extra]
        results[col.key] = try_driver(f"{bench} {col.label}", drive_against_server, col.python, latency, args)
    return results


def try_driver(what: str, call: Any, *args: Any) -> Any:
    """``call(*args)``, logging and returning ``None`` on failure so one broken client spoils one column only."""
    started = time.perf_counter()
    try:
        result = call(*args)
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as exc:
        log(f"  {what}: FAILED: {exc}")
        return None
    log(f"  {what}: done in {time.perf_counter() - started:.1f} s")
    return result


# ------------------------------------------------------------------------------------------------ output


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "platform": platform.platform()}


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (readable as is in a terminal), first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        parts = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def fmt(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """A figure for a table cell; ``n/a`` for a missing one."""
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def emit(text: str, data: Any, json_path: str | None) -> int:
    """Print a benchmark's tables and, with ``--json PATH``, write its raw figures there."""
    print(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(data, f, indent=1)
    return 0
