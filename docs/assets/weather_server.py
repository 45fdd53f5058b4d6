"""A tiny MCP server for docs/mcp.md: run it with `python docs/assets/weather_server.py` (stdio), or
`python docs/assets/weather_server.py --http 8000` (streamable HTTP at http://127.0.0.1:8000/mcp)."""

import sys

from mcp.server import MCPServer

server = MCPServer("weather")


@server.tool()
def forecast(city: str) -> dict[str, object]:
    """Tomorrow's forecast for a city."""
    return {"city": city, "celsius": 21, "sky": "sunny"}


if __name__ == "__main__":
    if "--http" in sys.argv:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
