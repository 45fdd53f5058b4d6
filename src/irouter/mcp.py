"""Tools from Model Context Protocol servers, next to plain functions (the ``irouter[mcp]`` extra).

>>> import irouter.mcp                                                            # doctest: +SKIP
>>> chat = Chat("openai/gpt-4o-mini", tools=[irouter.mcp.stdio("python", "-m", "my_server"),
...                                          irouter.mcp.http("http://127.0.0.1:8000/mcp"), my_function])

`stdio` and `http` describe a server; they start nothing. The server starts when a turn first needs its tools
(its tool list is read once per start) and stays up for the turns after; ``chat.close()`` (or leaving
``with Chat(...)``) stops it, and so does the end of the interpreter. A server that stopped starts again on next use.

Each of the server's tools becomes a tool of the chat: its name, description and input schema go to the model as
the server gives them; the model's calls go to the server (the server checks the arguments); the result goes back
as the tool message: its text blocks, or its structured content as JSON when it has no text, images and other
binary blocks noted as ``[image image/png, 68 bytes]`` (tool messages carry text). A result the server marks as an
error, a server that died, or one that does not answer within ``timeout`` seconds become ``"Error: ..."`` for the
model, and the turn goes on. The ``before_tool``/``after_tool`` hooks see these calls like any other; an
`after_tool` hook finds the server's ``mcp.types.CallToolResult`` in ``result.value``.

A server that cannot start raises `MCPServerError` before the turn sends anything.

Saving: a pickled chat keeps each server as its command or URL (never a live session; secret headers such as
``Authorization`` are left out), and starts it again where it is unpickled. ``chat.save()`` leaves ``tools`` out,
as for functions: give them again to ``Chat.load``.

The MCP client is async; it runs on one background event loop thread shared by every server, so `Chat` (threads)
and `AsyncChat` (the caller's loop, never blocked by a call) use the same sessions. In an `AsyncChat`, the first
turn starts the server while it builds the turn; ``await server.astart()`` beforehand avoids that short pause.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import json
import sys
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from .errors import IrouterError
from .tools import TOOL_NAME, Tool

if TYPE_CHECKING:
    from mcp import Client

__all__ = ["MCPServerError", "MCPToolError", "Server", "http", "stdio"]

T = TypeVar("T")
DEFAULT_TIMEOUT = 60.0
DEFAULT_START_TIMEOUT = 30.0
CONNECTION_CLOSED = -32000
"""The JSON-RPC error code of a session whose server went away."""


class MCPServerError(IrouterError):
    """An MCP server could not start (or list its tools): the command failed, the URL does not answer, the
    ``mcp`` package is missing."""


class MCPToolError(Exception):
    """A tool call the server answered as an error (``isError``); the model reads ``Error: MCPToolError: ...``."""


# --------------------------------------------------------------------------------------------- background loop

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()
_live: set[Server] = set()


def _background() -> asyncio.AbstractEventLoop:
    """The event loop every MCP session runs on, in a daemon thread started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="irouter-mcp", daemon=True).start()
            _loop = loop
        return _loop


def _submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    return asyncio.run_coroutine_threadsafe(coro, _background())


def _wait(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop and wait for it here (never called on that loop itself)."""
    return _submit(coro).result()


async def _await(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the background loop, awaited from another loop without blocking it."""
    return await asyncio.wrap_future(_submit(coro))


@atexit.register
def _close_all() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.close()


# --------------------------------------------------------------------------------------------- servers


class Server:
    """An MCP server whose tools a chat may use: made by `stdio` or `http`; give it in ``tools=[...]``.

    Args:
        prefix: put before each tool's name (``"files_"``), for two servers with tools of the same name.
        timeout: seconds a tool call may take before the model is told the server did not answer.
        start_timeout: seconds the server may take to start and list its tools.
    """

    def __init__(
        self,
        *,
        command: Sequence[str] | None = None,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        headers: Mapping[str, str] | None = None,
        prefix: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stderr: TextIO | None = None,
    ) -> None:
        for label, value in (("timeout", timeout), ("start_timeout", start_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if not isinstance(prefix, str) or (prefix and not TOOL_NAME.fullmatch(prefix)):
            raise ValueError(f"prefix must be letters, digits, '_' or '-', got {prefix!r}")
        for label, given in (("env", env), ("headers", headers)):
            if given is not None and (
                not isinstance(given, Mapping) or not all(isinstance(v, str) for v in [*given, *given.values()])
            ):
                raise TypeError(
                    f"{label} must be a dict of names to strings, such as {{'NAME': 'value'}}, got {given!r}"
                )
        self.command = list(command) if command is not None else None
        self.url = url
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.headers = dict(headers or {})
        self.prefix = prefix
        self.timeout = float(timeout)
        self.start_timeout = float(start_timeout)
        self.stderr = stderr
        self._session: _Session | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ what it is
    def __repr__(self) -> str:
        return f"irouter.mcp.Server({self.where!r})"  # headers (secrets) never shown

    @property
    def where(self) -> str:
        """The command line, or the URL."""
        return " ".join(self.command) if self.command else str(self.url)

    def __getstate__(self) -> dict[str, Any]:
        """The spec only: a pickle holds no session, no stderr stream, no secret header and no secret environment
        variable (``OPENROUTER_API_KEY``, ``GITHUB_TOKEN``...: names that say so, as for headers)."""
        from ._persist import is_secret_header

        state = {k: v for k, v in self.__dict__.items() if k not in ("_session", "_lock", "stderr")}
        state["headers"] = {k: v for k, v in self.headers.items() if not is_secret_header(k)}
        if self.env is not None:
            state["env"] = {k: v for k, v in self.env.items() if not is_secret_header(k)}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stderr = None
        self._session = None
        self._lock = threading.Lock()

    def __copy__(self) -> Server:
        return self  # copies of a chat share its servers

    def __deepcopy__(self, memo: dict[int, Any]) -> Server:
        return self

    # ------------------------------------------------------------------ sessions
    def _live_session(self) -> _Session | None:
        session = self._session
        return session if session is not None and session.alive() else None

    def _opening(self) -> tuple[_Session, bool]:
        with self._lock:
            session = self._live_session()
            if session is not None:
                return session, False
            session = self._session = _Session(self)
            _live.add(self)
            return session, True

    def start(self) -> Server:
        """Start the server (if it is not running) and read its tools; raises `MCPServerError` if it cannot."""
        session, new = self._opening()
        _wait(session.ready(new))
        return self

    async def astart(self) -> Server:
        """`start`, awaited without blocking the caller's event loop."""
        session, new = self._opening()
        await _await(session.ready(new))
        return self

    def close(self) -> None:
        """Stop the server (a later turn starts it again)."""
        with self._lock:
            session, self._session = self._session, None
            _live.discard(self)
        if session is not None:
            _wait(session.stop())

    async def aclose(self) -> None:
        """`close`, awaited."""
        with self._lock:
            session, self._session = self._session, None
            _live.discard(self)
        if session is not None:
            await _await(session.stop())

    def __irouter_tools__(self) -> list[Tool]:
        """The server's tools as chat tools (starting it if needed): read by `irouter.tools.Toolbox`."""
        session, new = self._opening()
        _wait(session.ready(new))
        return [MCPTool(self, t) for t in session.tools]

    def _call(self, name: str, arguments: dict[str, Any]) -> Coroutine[Any, Any, Any]:
        session = self._live_session()
        if session is None:  # stopped since the tools were listed: start it again, on the background loop
            session, new = self._opening()
            return session.call(name, arguments, new)
        return session.call(name, arguments, False)


class _Session:
    """One running connection to a server; all of it runs on the background loop."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.tools: list[Any] = []
        self.client: Client | None = None
        self.failure: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._up: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._dead = False

    def alive(self) -> bool:
        return not self._dead

    async def ready(self, new: bool) -> None:
        """Wait until the server is up and its tools are listed (starting it when ``new``)."""
        if new:
            self._up, self._stop = asyncio.Event(), asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._hold())
        while self._up is None:  # another caller is starting it
            await asyncio.sleep(0.01)
        try:
            await asyncio.wait_for(self._up.wait(), self.server.start_timeout)
        except asyncio.TimeoutError:
            self._dead = True
            await self.stop()
            where, limit = self.server.where, self.server.start_timeout
            raise MCPServerError(f"The MCP server {where!r} did not start in {limit:g} s (start_timeout=)") from None
        if self.failure is not None:
            self._dead = True
            cause = self.failure if isinstance(self.failure, Exception) else None
            why = _describe(self.failure)
            raise MCPServerError(f"The MCP server {self.server.where!r} could not start: {why}") from cause

    async def _hold(self) -> None:
        """Open the session, list the tools, and keep the session open until `stop` (or the server ends)."""
        assert self._up is not None
        assert self._stop is not None
        try:
            from mcp import Client

            async with Client(self._transport()) as client:
                listed = await client.list_tools()
                self.tools = list(listed.tools)
                while listed.next_cursor:
                    listed = await client.list_tools(cursor=listed.next_cursor)
                    self.tools += listed.tools
                self.client = client
                self._up.set()
                await self._stop.wait()
        except BaseException as exc:  # reported by `ready` or, once up, by the next call
            self.failure = exc
            if isinstance(exc, ImportError):
                self.failure = MCPServerError("MCP servers need the mcp package: pip install 'irouter[mcp]'")
            if not isinstance(exc, (Exception, asyncio.CancelledError)):
                raise
        finally:
            self._dead = True
            self.client = None
            self._up.set()

    def _transport(self) -> Any:
        server = self.server
        if server.command is not None:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            params = StdioServerParameters(
                command=server.command[0], args=server.command[1:], env=server.env, cwd=server.cwd
            )
            return stdio_client(params, errlog=server.stderr or sys.stderr)
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        assert server.url is not None
        client = create_mcp_http_client(headers=server.headers) if server.headers else None
        return streamable_http_client(server.url, http_client=client)

    async def call(self, name: str, arguments: dict[str, Any], new: bool) -> Any:
        """Call one tool; a server that died or does not answer in time raises (the model reads why)."""
        await self.ready(new)
        client = self.client
        if client is None:
            raise MCPToolError(f"the MCP server {self.server.where!r} has stopped: {_describe(self.failure)}")
        try:
            return await asyncio.wait_for(client.call_tool(name, arguments), self.server.timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the MCP server did not answer within {self.server.timeout:g} s") from None
        except Exception as exc:
            if getattr(exc, "code", None) not in (None, CONNECTION_CLOSED) and not self._dead:
                raise  # the server answered with an error: it is still up
            await self.stop()  # gone: the next call starts it again
            raise MCPToolError(f"the MCP server {self.server.where!r} has stopped ({_describe(exc)})") from None

    async def stop(self) -> None:
        self._dead = True
        if self._stop is not None:
            self._stop.set()
        task = self._task
        if task is not None and not task.done():
            if self._up is not None and not self._up.is_set():
                task.cancel()  # still starting (a silent server): no session to close, stop its process now
            await asyncio.wait({task}, timeout=5)  # the SDK closes the session and ends the process
            if not task.done():
                task.cancel()


def _describe(exc: BaseException | None) -> str:
    """A failure's message, looking inside the exception groups anyio's task groups raise."""
    while exc is not None and getattr(exc, "exceptions", None):  # an ExceptionGroup
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if exc is None:
        return "it ended"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------- tools


class MCPTool(Tool):
    """One tool of an MCP server, as the chat offers and runs it."""

    def __init__(self, server: Server, tool: Any) -> None:  # no super().__init__: there is no function
        self.server = server
        self.remote_name: str = tool.name
        self.name = server.prefix + tool.name
        if not TOOL_NAME.fullmatch(self.name):
            raise MCPServerError(
                f"The MCP server {server.where!r} has a tool named {self.name!r}, which OpenRouter does not take "
                "(1-64 letters, digits, '_' or '-')"
            )
        self.description = tool.description or ""
        self.parameters = dict(tool.input_schema)
        self.is_async = True
        self.func = self.start

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments as the model sent them: the server checks them against its schema."""
        return dict(arguments)

    async def start(self, **kwargs: Any) -> Any:
        """Call the tool on the server, from any event loop; returns the text for the model."""
        result = await _await(self.server._call(self.remote_name, kwargs))
        return _answer(result)

    def __call__(self, **kwargs: Any) -> Any:
        return _answer(_wait(self.server._call(self.remote_name, kwargs)))

    def __repr__(self) -> str:
        return f"MCPTool({self.name!r}, {self.server.where!r})"


class MCPResult(str):
    """The text a tool call sends to the model; ``.result`` is the server's ``mcp.types.CallToolResult``."""

    result: Any


def _answer(result: Any) -> MCPResult:
    """The text for the model from a ``CallToolResult``; raises `MCPToolError` for an error result."""
    parts = [_block_text(block) for block in result.content]
    texts = [p for p in parts if p is not None]
    if not any(block.type == "text" for block in result.content) and result.structured_content is not None:
        texts.insert(0, json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(texts)
    if result.is_error:
        raise MCPToolError(text or "the tool failed")
    answer = MCPResult(text)
    answer.result = result
    return answer


def _block_text(block: Any) -> str | None:
    kind = block.type
    if kind == "text":
        return str(block.text)
    if kind in ("image", "audio"):
        size = len(base64.b64decode(block.data, validate=False))
        return f"[{kind} {block.mime_type}, {size} bytes]"
    if kind == "resource":
        inner = block.resource
        text = getattr(inner, "text", None)
        return str(text) if text is not None else f"[resource {inner.uri}]"
    if kind == "resource_link":
        return f"[resource {block.uri}]"
    return None


# --------------------------------------------------------------------------------------------- public makers


def stdio(
    command: str,
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    prefix: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    stderr: TextIO | None = None,
) -> Server:
    """A server run as a subprocess, spoken to over its stdin/stdout: ``stdio("python", "-m", "my_server")``.

    ``env`` adds environment variables (over the SDK's safe defaults); ``stderr`` receives the server's own
    output (default: this process's stderr). See `Server` for the rest.
    """
    if not isinstance(command, str) or not command or not all(isinstance(a, str) for a in args):
        raise TypeError("stdio() takes the command and its arguments as strings: stdio('python', '-m', 'server')")
    return Server(
        command=[command, *args],
        env=env,
        cwd=cwd,
        prefix=prefix,
        timeout=timeout,
        start_timeout=start_timeout,
        stderr=stderr,
    )


def http(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    prefix: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> Server:
    """A server reached over streamable HTTP: ``http("http://127.0.0.1:8000/mcp")``. ``headers`` go with every
    request (an ``Authorization`` header is never shown nor pickled)."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"http() takes the server's http:// or https:// URL, got {url!r}")
    return Server(url=url, headers=headers, prefix=prefix, timeout=timeout, start_timeout=start_timeout)
