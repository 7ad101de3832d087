"""Calling a tool directly, as its activity does (no worker), and a loopback HTTP server for tools to reach."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from typing import Any

from morgus.activities.tools import REGISTRY, ToolContext, ToolOutput
from morgus.contracts import Phase


def ctx_for(settings: Any, task_id: str | None = None, **kw: Any) -> ToolContext:
    """A BUILD-phase context; without `task_id`, a task (and so a workspace) of its own."""
    return ToolContext(task_id=task_id or str(uuid.uuid4()), phase=Phase.BUILD, settings=settings, **kw)


async def run_tool(name: str, ctx: ToolContext, **args: Any) -> ToolOutput | str:
    spec = REGISTRY[name]
    return await spec.run(ctx, spec.args(**args))  # type: ignore[misc]


async def call(name: str, ctx: ToolContext, **args: Any) -> str:
    """The tool's text, as the model reads it (a plain string, or a ToolOutput's content)."""
    out = await run_tool(name, ctx, **args)
    return out if isinstance(out, str) else out.content


async def call_output(name: str, ctx: ToolContext, **args: Any) -> ToolOutput:
    """A tool that reports artifacts or steps: its whole ToolOutput."""
    out = await run_tool(name, ctx, **args)
    assert isinstance(out, ToolOutput), f"{name} returned plain text, not a ToolOutput: {out!r}"
    return out


@contextmanager
def http_server(handler: Any) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
