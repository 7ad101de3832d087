"""The real app under uvicorn on a loopback port, and an httpx client for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from morgus.app.api import create_app
from tests.conftest import free_port


@asynccontextmanager
async def served(settings: Any, client: Any, store: Any, **app_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on its own port (generous connection limits, for the tests that open many streams)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, client=client, store=store, **app_kwargs),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits) as http:
            yield http
    finally:
        server.should_exit = True
        await task


def is_error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return body["error"]
