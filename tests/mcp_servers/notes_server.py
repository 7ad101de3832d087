"""A small real MCP server for the tests, written with the `mcp` SDK: `python notes_server.py stdio` or
`python notes_server.py http PORT`. Every call is appended to the JSON-lines file named by NOTES_LOG (set through
the server's `env` in the Morgus MCP config), so a test can check what reached the server."""

from __future__ import annotations

import json
import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("notes")


def _log(tool: str, **args: object) -> None:
    path = os.environ.get("NOTES_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, "args": args, "pid": os.getpid()}) + "\n")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup(topic: str) -> str:
    """Look up the team's note on a topic."""
    _log("lookup", topic=topic)
    return f"note on {topic}: the bakery opens at 7."


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def huge(megabytes: int = 10) -> str:
    """Return a very large text."""
    _log("huge", megabytes=megabytes)
    return "x" * (megabytes * 1024 * 1024)


@server.tool(annotations=ToolAnnotations(destructiveHint=True))
def crash() -> str:
    """Stop the server in the middle of the call."""
    _log("crash")
    os._exit(3)


@server.tool(description=f"The service status (a careless server names its token here: {os.environ.get('API_TOKEN')})")
def status(detail: str = os.environ.get("API_TOKEN", "")) -> str:
    return "up"


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def padded_env(name: str, pad: int = 0) -> str:
    """Return `pad` dots and then an environment variable of the server (a server that echoes its token)."""
    _log("padded_env", name=name, pad=pad)
    return "." * pad + os.environ.get(name, "")


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
