"""A small real MCP server for tests and benchmarks (the official SDK's ``MCPServer``).

Tools: ``add`` (two numbers), ``echo`` (text back), ``slow`` (sleeps, then answers), ``fail``
(always a tool error), ``delete_item`` (pretends to delete; configure it as irreversible),
``calls`` (how many tool calls this process has served, to show a tool did or did not run) and
``pid`` (this process's id, so a test can kill a stdio server and see the gateway start another).

    python -m groundgate.testing.mcp_server --stdio
    python -m groundgate.testing.mcp_server --http [--port 0]   # prints "listening on URL"
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("groundgate-test", log_level="WARNING")
_served: list[str] = []


@server.tool(description="Add two numbers.")
def add(a: float, b: float) -> str:
    _served.append("add")
    total = a + b
    return str(int(total) if total.is_integer() else total)


@server.tool(description="Return the text unchanged.")
def echo(text: str) -> str:
    _served.append("echo")
    return text


@server.tool(description="Wait for some seconds, then answer 'done'.")
async def slow(seconds: float = 5.0) -> str:
    _served.append("slow")
    await asyncio.sleep(seconds)
    return "done"


@server.tool(description="Always fails.")
def fail(message: str = "it broke") -> str:
    _served.append("fail")
    raise ToolError(message)


@server.tool(description="Delete an item by id (irreversible).")
def delete_item(item_id: str) -> str:
    _served.append("delete_item")
    return f"deleted {item_id}"


@server.tool(description="How many calls of each tool this server has served.")
def calls() -> str:
    return ",".join(_served)


@server.tool(description="This server's process id.")
def pid() -> str:
    return str(os.getpid())


async def _serve_http(port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # connections queue from now on, before uvicorn takes over
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    http = uvicorn.Server(config)
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)
    await http.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true")
    mode.add_argument("--http", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.stdio:
        server.run("stdio")
    else:
        asyncio.run(_serve_http(args.port))


if __name__ == "__main__":
    main()
