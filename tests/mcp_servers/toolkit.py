"""A small MCP server for the tests and docs, written with the SDK's own server API.

Run it over stdio (``python tests/mcp_servers/toolkit.py``) or over streamable HTTP on loopback
(``python tests/mcp_servers/toolkit.py --http PORT``; it serves ``http://127.0.0.1:PORT/mcp``).
``--prefix NAME`` renames its tools ``NAME_add``... so that several copies can serve one chat.
"""

from __future__ import annotations

import argparse
import base64
import os
import time

from mcp.server import MCPServer
from mcp.server.mcpserver import Image
from mcp.server.mcpserver.exceptions import ToolError

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def build(prefix: str = "") -> MCPServer:
    server = MCPServer("toolkit")
    name = (lambda n: f"{prefix}_{n}") if prefix else (lambda n: n)

    @server.tool(name=name("add"))
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool(name=name("weather"), structured_output=True)
    def weather(city: str) -> dict[str, object]:
        """Today's weather in a city, as data."""
        return {"city": city, "celsius": 21, "sky": "clear"}

    @server.tool(name=name("pixel"))
    def pixel() -> Image:
        """A one-pixel PNG image."""
        return Image(data=PNG, format="png")

    @server.tool(name=name("fail"))
    def fail(reason: str) -> str:
        """Always fails, with the reason given."""
        raise ToolError(f"failed on purpose: {reason}")

    @server.tool(name=name("die"))
    def die() -> str:
        """Kills this server's process at once."""
        os._exit(3)

    @server.tool(name=name("sleep"))
    def sleep(seconds: float) -> str:
        """Sleeps, then says so."""
        time.sleep(seconds)
        return f"slept {seconds}"

    @server.tool(name=name("pid"))
    def pid() -> int:
        """This server's process id."""
        return os.getpid()

    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--prefix", default="")
    args = parser.parse_args()
    server = build(args.prefix)
    if args.http is None:
        server.run()
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
