"""Transports to an MCP server that bound what one reply may cost: at most `max_bytes` held for one message.

The SDK's own stdio transport buffers a line of any length and its HTTP transport reads a JSON reply of any size;
a server that answers with a gigabyte would take the worker's memory with it. Here a longer message ends the
connection instead, and `Overflow.hit` says why, so the caller reports "the reply was too large" rather than a
closed connection.

A stdio server runs on the worker's host, as the worker's user, in its own process group: its environment is the
SDK's minimal one (PATH, HOME, USER, …) plus the config's `env`, never the worker's own secrets (DATABASE_URL,
OPENAI_API_KEY); it is stopped (stdin closed, then SIGTERM, then SIGKILL to the group) when the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import httpx2
import mcp_types
from mcp.client._transport import TransportStreams
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

STOP_GRACE_S = 2.0


@dataclass
class Overflow:
    limit: int
    hit: bool = False


class ReplyTooLarge(Exception):
    pass


async def _stop(proc: asyncio.subprocess.Process, *, at_once: bool) -> None:
    """Close stdin and give the server STOP_GRACE_S to exit, then SIGTERM, then SIGKILL, to its process group.
    `at_once`: a server whose reply was refused is still writing it to a pipe nobody reads; it cannot exit."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError, RuntimeError):
            proc.stdin.close()
    for sig in (signal.SIGKILL,) if at_once else (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            break
        except TimeoutError:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever it started is not left behind


@contextlib.asynccontextmanager
async def capped_stdio(
    command: str, args: list[str], env: dict[str, str], cwd: str | None, overflow: Overflow
) -> AsyncIterator[TransportStreams]:
    proc = await asyncio.create_subprocess_exec(
        command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=get_default_environment() | env,
        cwd=cwd,
        limit=overflow.limit,  # readline() refuses a longer line instead of buffering it
        start_new_session=True,
    )
    read_in, read_out = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_in, write_out = anyio.create_memory_object_stream[SessionMessage](0)

    async def reader() -> None:
        assert proc.stdout is not None
        async with read_in:
            while True:
                try:
                    line = await proc.stdout.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    overflow.hit = True
                    return  # closing the stream fails the pending request at once
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    message = mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValueError as e:
                    await read_in.send(e)
                    continue
                await read_in.send(SessionMessage(message))

    async def writer() -> None:
        assert proc.stdin is not None
        with contextlib.suppress(OSError, RuntimeError, anyio.ClosedResourceError):
            async with write_out:
                async for msg in write_out:
                    data = msg.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    proc.stdin.write(data.encode())
                    await proc.stdin.drain()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            try:
                yield read_out, write_in
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(proc, at_once=overflow.hit)


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, overflow: Overflow) -> None:
        self._inner, self._overflow = inner, overflow

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._overflow.limit:
                self._overflow.hit = True
                raise ReplyTooLarge(f"the reply is larger than {self._overflow.limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """Each HTTP response body is cut off past `overflow.limit` bytes."""

    def __init__(self, overflow: Overflow) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self._overflow = overflow

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self._overflow)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
