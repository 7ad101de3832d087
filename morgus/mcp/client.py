"""One connection to an operator's MCP server per activity: list its tools, or make one call, then close.

A connection per call keeps nothing alive between activities (a worker restart loses nothing) at the price of a
start per call (a stdio server is a new process each time). Every failure to reach the server, a reply past the
size limit and a deadline become `McpUnavailable` with a sentence that names the server but never its URL, env or
headers (`_redact`); an error the server itself reports about the call is a `CallResult` with `is_error`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

from morgus.mcp.config import McpServerConfig
from morgus.mcp.transport import CappedTransport, Overflow, capped_stdio
from morgus.text import clean_text

LIST_PAGES_MAX = 20
LIST_TIMEOUT_S = 60.0  # listing at task start: a slow server must not hold the task's start for its call deadline


class McpUnavailable(Exception):
    """The server could not be reached, died, timed out or sent a reply past the limit."""


@dataclass
class CallResult:
    text: str
    is_error: bool
    chars: int  # of the whole text before the cap


def _scrub(text: str, cfg: McpServerConfig) -> str:
    """`text` without the server's configured secrets: a server that echoes its token does not hand it to the
    model, the steps or the console."""
    for secret in cfg.secrets():
        text = text.replace(secret, "[redacted]")
    return text


def _redact(text: str, cfg: McpServerConfig) -> str:
    return _scrub(text, cfg)[:500]


@contextlib.asynccontextmanager
async def _connected(name: str, cfg: McpServerConfig, overflow: Overflow) -> AsyncIterator[Client]:
    if cfg.command is not None:
        env = {k: v.get_secret_value() for k, v in cfg.env.items()}
        transport: Any = capped_stdio(cfg.command, cfg.args, env, cfg.cwd, overflow)
    else:
        assert cfg.url is not None
        http = httpx2.AsyncClient(
            headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
            timeout=httpx2.Timeout(30.0, read=cfg.timeout_s),
            transport=CappedTransport(overflow),
        )
        transport = streamable_http_client(cfg.url, http_client=http, max_sse_event_size=overflow.limit)
    async with contextlib.AsyncExitStack() as stack:
        if cfg.url is not None:
            await stack.enter_async_context(http)
        client = await stack.enter_async_context(
            Client(transport, cache=None, read_timeout_seconds=cfg.timeout_s, raise_exceptions=True)
        )
        yield client


def _leaf(e: BaseException) -> BaseException:
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def _unavailable(name: str, cfg: McpServerConfig, overflow: Overflow, e: BaseException) -> McpUnavailable:
    e = _leaf(e)
    if overflow.hit:
        return McpUnavailable(f"MCP server {name!r} sent a reply larger than {overflow.limit} bytes; it was not read")
    if isinstance(e, TimeoutError) or (isinstance(e, MCPError) and e.code == REQUEST_TIMEOUT):
        return McpUnavailable(f"MCP server {name!r} did not answer in time")
    if isinstance(e, OSError) and cfg.command is not None:
        return McpUnavailable(f"MCP server {name!r} could not be started ({type(e).__name__}: {_redact(str(e), cfg)})")
    if isinstance(e, MCPError) and e.code == CONNECTION_CLOSED:
        return McpUnavailable(f"MCP server {name!r} closed the connection before it answered (it may have crashed)")
    detail = f"{type(e).__name__}: {_redact(str(e), cfg)}".rstrip(": ")
    return McpUnavailable(f"MCP server {name!r} ({cfg.transport}) is not reachable or closed the connection ({detail})")


async def list_tools(name: str, cfg: McpServerConfig, max_bytes: int) -> list[Any]:
    """The server's tools (the SDK's Tool objects), following pagination up to LIST_PAGES_MAX pages."""
    overflow = Overflow(max_bytes)
    try:
        with anyio.fail_after(min(cfg.timeout_s, LIST_TIMEOUT_S)):
            async with _connected(name, cfg, overflow) as client:
                tools: list[Any] = []
                cursor = None
                for _ in range(LIST_PAGES_MAX):
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                return tools
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as e:  # noqa: BLE001 - every way a server can fail is reported as one sentence
        raise _unavailable(name, cfg, overflow, e) from None


def result_text(result: Any, cap: int) -> tuple[str, int]:
    """The model's view of a CallToolResult: its text blocks (other content named, not inlined), else its
    structured content as JSON; at most `cap` characters, and the full length."""
    parts: list[str] = []
    total = 0
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            text = str(getattr(block, "text", ""))
        elif kind == "resource" and hasattr(getattr(block, "resource", None), "text"):
            text = str(block.resource.text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(getattr(block, "resource", None), "mime_type", "")
            text = f"[{kind or 'unknown'} content{f' ({mime})' if mime else ''} not shown]"
        total += len(text)
        if sum(len(p) for p in parts) < cap:
            parts.append(text[:cap])
    if not parts and getattr(result, "structured_content", None) is not None:
        text = json.dumps(result.structured_content, ensure_ascii=False, default=str)
        total, parts = len(text), [text[:cap]]
    return clean_text("\n".join(parts)[:cap]), total


async def call_tool(
    name: str, cfg: McpServerConfig, tool: str, arguments: dict[str, Any], *, max_bytes: int, cap: int
) -> CallResult:
    overflow = Overflow(max_bytes)
    try:
        with anyio.fail_after(cfg.timeout_s):
            async with _connected(name, cfg, overflow) as client:
                try:
                    result = await client.call_tool(tool, arguments)
                except MCPError as e:  # the server answered, with an error about this call
                    if overflow.hit or e.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
                        raise
                    return CallResult(_redact(clean_text(e.error.message), cfg), True, len(e.error.message))
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as e:  # noqa: BLE001
        raise _unavailable(name, cfg, overflow, e) from None
    # read past the cap by the longest secret and scrub before cutting: a secret straddling the cap is replaced
    # whole, not shown up to it
    longest = max((len(s) for s in cfg.secrets()), default=0)
    text, total = result_text(result, cap + longest)
    return CallResult(_scrub(text, cfg)[:cap], bool(getattr(result, "is_error", False)), total)
