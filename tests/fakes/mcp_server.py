"""A small MCP server on the official SDK, for the tests: ``python -m tests.fakes.mcp_server
stdio`` or ``… http PORT``. Its tools: ``add`` (two numbers), ``shout`` (upper-cases text),
``slow`` (sleeps), ``forget`` (annotated destructive), and ``die`` (the process exits
mid-call, as a crashing server does)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("test-tools")


@server.tool(description="Add two numbers.")
def add(a: float, b: float) -> str:
    total = a + b
    return str(int(total) if total.is_integer() else total)


@server.tool(description="The text in capitals.")
def shout(text: str) -> str:
    return text.upper() + (
        f" ({os.environ['SHOUT_SUFFIX']})" if "SHOUT_SUFFIX" in os.environ else ""
    )


@server.tool(description="Wait, then answer.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@server.tool(
    description="Forget everything (a side effect).",
    annotations=ToolAnnotations(destructive_hint=True),
)
def forget() -> str:
    return "forgotten"


@server.tool(description="Crash the server.")
def die() -> str:
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
