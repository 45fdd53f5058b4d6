"""Tools from real MCP servers (tests/mcp_servers/toolkit.py, written with the SDK's server API), over stdio and
over streamable HTTP on loopback, in sync and async chats, against the OpenRouter double."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import irouter.mcp
from irouter import AsyncChat, Call, Chat, ToolResult
from irouter.testing import OpenRouterDouble, Text, ToolCall

TOOLKIT = str(Path(__file__).resolve().parent / "mcp_servers" / "toolkit.py")
QUIET = open(os.devnull, "w")  # noqa: SIM115 - the servers' own logs (tracebacks of failing tools) stay out of the output


def toolkit(*args: str, **kwargs: Any) -> irouter.mcp.Server:
    return irouter.mcp.stdio(sys.executable, TOOLKIT, *args, stderr=QUIET, **kwargs)


def tool_messages(router: OpenRouterDouble) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in router.chat_requests[-1]["messages"] if m["role"] == "tool"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def serve_http(prefix: str) -> tuple[subprocess.Popen[bytes], str]:
    """The toolkit served over streamable HTTP on a free loopback port, in its own process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, TOOLKIT, "--http", str(port), "--prefix", prefix], stdout=QUIET, stderr=QUIET
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the MCP test server did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    process, url = serve_http("web")
    yield url
    process.terminate()
    process.wait(10)


def test_tools_are_listed_with_their_schemas_and_calls_go_to_the_server(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    seen: list[ToolResult] = []
    router.queue(
        Text(
            tool_calls=[
                ToolCall("add", {"a": 2, "b": 40}, id="a"),
                ToolCall("weather", {"city": "Paris"}, id="w"),
                ToolCall("pixel", {}, id="p"),
            ]
        ),
        "It is 42, sunny, and here is a pixel.",
    )
    with Chat("m/m", tools=[toolkit()], after_tool=seen.append, **connect) as chat:
        assert chat("go") == "It is 42, sunny, and here is a pixel."
    offered = {t["function"]["name"]: t["function"] for t in router.chat_requests[0]["tools"]}
    assert set(offered) == {"add", "weather", "pixel", "fail", "die", "sleep", "pid"}
    assert offered["add"]["description"] == "Add two whole numbers."
    assert offered["add"]["parameters"] == {  # the server's input schema, as it gave it
        "type": "object",
        "properties": {"a": {"title": "A", "type": "integer"}, "b": {"title": "B", "type": "integer"}},
        "required": ["a", "b"],
        "title": "addArguments",
    }
    answers = tool_messages(router)
    assert answers["a"] == "42"
    assert '"celsius": 21' in answers["w"]
    assert '"city": "Paris"' in answers["w"]
    assert answers["p"] == "[image image/png, 70 bytes]"
    assert [m["role"] for m in chat.history] == ["system", "user", "assistant", "tool", "tool", "tool", "assistant"]
    by_id = {r.call.id: r for r in seen}
    assert by_id["w"].value.result.structured_content == {"city": "Paris", "celsius": 21, "sky": "clear"}
    assert by_id["p"].value.result.content[0].mime_type == "image/png"
    assert all(type(m["content"]) is str for m in chat.history)  # plain data in history


def test_an_error_result_goes_back_to_the_model_and_hooks_see_it(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    before: list[str] = []
    after: list[ToolResult] = []
    router.queue(
        Text(tool_calls=[ToolCall("fail", {"reason": "no disk"}, id="f"), ToolCall("add", {"a": "x"}, id="bad")]),
        "Sorry.",
    )
    chat = Chat("m/m", tools=[toolkit()], **connect)
    try:
        assert chat("go", before_tool=lambda c: before.append(c.name), after_tool=after.append) == "Sorry."
    finally:
        chat.close()
    answers = tool_messages(router)
    assert answers["f"].startswith("Error: MCPToolError: ")
    assert "no disk" in answers["f"]
    assert answers["bad"].startswith("Error: MCPToolError: ")  # the server checked the arguments
    assert sorted(before) == ["add", "fail"]
    assert {r.call.id: type(r.error).__name__ for r in after} == {"f": "MCPToolError", "bad": "MCPToolError"}


def test_a_server_killed_mid_turn_gives_the_model_an_error_and_starts_again(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    router.queue(Text(tool_calls=[ToolCall("pid", {}, id="p1")]), Text(tool_calls=[ToolCall("die", {}, id="d")]), "ok")
    with Chat("m/m", tools=[toolkit()], **connect) as chat:
        assert chat("die, please") == "ok"
        first = int(chat.history[3]["content"])
        assert chat.history[5]["content"].startswith("Error: MCPToolError: the MCP server")
        assert "has stopped" in chat.history[5]["content"]
        assert wait_gone(first)
        router.queue(Text(tool_calls=[ToolCall("pid", {}, id="p2")]), "back")
        assert chat("again") == "back"
        second = int(tool_messages(router)["p2"])
    assert second != first


def test_an_http_server_killed_mid_turn(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    process, url = serve_http("h")
    try:
        router.queue(Text(tool_calls=[ToolCall("h_die", {}, id="d")]), Text(tool_calls=[ToolCall("h_pid", {})]), "ok")
        with Chat("m/m", tools=[irouter.mcp.http(url, timeout=30)], **connect) as chat:
            assert chat("die") == "ok"
        answers = [m["content"] for m in chat.history if m["role"] == "tool"]
        assert answers[0].startswith("Error: MCPToolError: the MCP server")
        assert answers[1].startswith("Error: ")  # nothing listens there any more: the restart fails, for the model
        assert process.wait(10) == 3
    finally:
        process.kill()


def test_a_streamed_call(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("add", {"a": 20, "b": 22}, id="a")]), "forty-two")
    call = Call("m/m", tools=[toolkit()], **connect)
    with call:
        assert "".join(call("sum?", stream=True)) == "forty-two"
    assert tool_messages(router) == {"a": "42"}


def test_a_server_that_hangs_times_out(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("sleep", {"seconds": 30}, id="s")]), "gave up")
    with Chat("m/m", tools=[toolkit(timeout=1)], **connect) as chat:
        assert chat("wait") == "gave up"
    assert tool_messages(router)["s"] == "Error: TimeoutError: the MCP server did not answer within 1 s"


def test_a_server_that_cannot_start_is_the_users_error(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    chat = Chat("m/m", tools=[irouter.mcp.stdio("no-such-mcp-server-command")], **connect)
    with pytest.raises(irouter.mcp.MCPServerError, match="could not start"):
        chat("hi")
    crashing = irouter.mcp.stdio(sys.executable, "-c", "raise SystemExit(2)", stderr=QUIET)
    with pytest.raises(irouter.mcp.MCPServerError, match="could not start"):
        Chat("m/m", **connect)("hi", tools=[crashing])
    assert router.requests == []
    assert chat.history[-1]["role"] == "system"


def test_closing_the_chat_stops_its_servers(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    router.queue(Text(tool_calls=[ToolCall("pid", {}, id="p")]), "ok")
    chat = Chat("m/m", tools=[toolkit()], **connect)
    chat("pid?")
    pid = int(tool_messages(router)["p"])
    assert alive(pid)
    chat.close()
    assert wait_gone(pid)


def test_several_servers_in_one_chat_over_stdio_and_http(
    router: OpenRouterDouble, connect: dict[str, str], http_server: str
) -> None:
    def local_add(a: int, b: int) -> int:
        """Add, in this process."""
        return a + b

    router.queue(
        Text(
            tool_calls=[
                ToolCall("add", {"a": 1, "b": 2}, id="s"),
                ToolCall("web_add", {"a": 3, "b": 4}, id="h"),
                ToolCall("two_add", {"a": 5, "b": 6}, id="t"),
                ToolCall("local_add", {"a": 7, "b": 8}, id="l"),
            ]
        ),
        "sums",
    )
    servers = [toolkit(), irouter.mcp.http(http_server), toolkit("--prefix", "x", prefix="two_")]
    with Chat("m/m", tools=[*servers, local_add], **connect) as chat:
        assert chat("add") == "sums"
    names = [t["function"]["name"] for t in router.chat_requests[0]["tools"]]
    assert {"add", "web_add", "two_x_add", "local_add"} <= set(names)
    assert "two_add" not in names
    answers = tool_messages(router)
    assert answers["s"] == "3"
    assert answers["h"] == "7"
    assert answers["l"] == "15"
    assert answers["t"].startswith("Error: unknown tool 'two_add'")


def test_two_servers_with_one_tool_name_need_a_prefix(router: OpenRouterDouble, connect: dict[str, str]) -> None:
    with Chat("m/m", tools=[toolkit(), toolkit()], **connect) as chat, pytest.raises(ValueError, match="prefix="):
        chat("hi")
    assert router.requests == []


def test_async_chat(router: OpenRouterDouble, connect: dict[str, str], http_server: str) -> None:
    async def main() -> tuple[str, dict[str, str]]:
        server = toolkit()
        await server.astart()
        router.queue(
            Text(tool_calls=[ToolCall("add", {"a": 1, "b": 1}, id="a"), ToolCall("web_add", {"a": 2, "b": 2}, id="w")]),
            "two and four",
        )
        async with AsyncChat("m/m", tools=[server, irouter.mcp.http(http_server)], **connect) as chat:
            router.queue(Text(tool_calls=[ToolCall("sleep", {"seconds": 0.5}, id="z")]), "slept")
            answer = await chat("go")
            assert await chat("sleep") == "slept"
        return answer, tool_messages(router)

    answer, answers = asyncio.run(main())
    assert answer == "two and four"
    assert answers == {"a": "2", "w": "4", "z": "slept 0.5"}
    assert router.chat_requests[1]["messages"][3:5] == [
        {"tool_call_id": "a", "role": "tool", "content": "2"},
        {"tool_call_id": "w", "role": "tool", "content": "4"},
    ]


def test_a_pickled_chat_keeps_the_servers_spec_not_the_session(
    router: OpenRouterDouble, connect: dict[str, str]
) -> None:
    web = irouter.mcp.http("http://127.0.0.1:9/mcp", headers={"Authorization": "Bearer sk-secret", "X-Team": "a"})
    assert "sk-secret" not in repr(web)
    router.queue(Text(tool_calls=[ToolCall("add", {"a": 1, "b": 1}, id="a")]), "2")
    chat = Chat("m/m", tools=[toolkit()], **connect)
    chat("one plus one")
    data = pickle.dumps(chat)
    chat.close()
    again = pickle.loads(data)
    again.api_key = connect["api_key"]  # never pickled
    assert again.defaults["tools"][0].command == [sys.executable, TOOLKIT]
    router.queue(Text(tool_calls=[ToolCall("add", {"a": 2, "b": 2}, id="b")]), "4")
    with again:
        assert again("two plus two") == "4"  # the server starts again where the chat was unpickled
    assert tool_messages(router)["b"] == "4"
    copied = pickle.loads(pickle.dumps(web))
    assert b"sk-secret" not in pickle.dumps(web)
    assert copied.headers == {"X-Team": "a"}
    assert copied.url == web.url


def test_bad_server_specs_raise_at_once() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        irouter.mcp.http("127.0.0.1:8000/mcp")
    with pytest.raises(TypeError, match="as strings"):
        irouter.mcp.stdio("python", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        irouter.mcp.stdio("python", timeout=0)
    with pytest.raises(ValueError, match="prefix"):
        irouter.mcp.stdio("python", prefix="a b")


def test_import_irouter_does_not_import_mcp() -> None:
    code = "import sys, irouter; print(sorted(m for m in ('mcp', 'irouter.mcp', 'anyio') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
