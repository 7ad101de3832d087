"""A request body is capped before anything reads it (morgus/app/api_guard.py MAX_BODY_BYTES). No server: the app is
driven in-process (httpx's ASGI transport pulls the body lazily, chunk by chunk, as a socket would).

FastAPI reads and parses a route's JSON body *before* it runs the route's dependencies, the token check among
them: without a cap, anyone who reaches the port could make the API hold a body of any size in memory (and parse
it) before the 401. The largest real body (a task: 20,000 characters of description) is far under the cap."""

from __future__ import annotations

import asyncio

import httpx

from morgus.app.api import create_app
from morgus.app.api_guard import MAX_BODY_BYTES
from morgus.config import Settings

CHUNK = 64 * 1024


def app():
    return create_app(Settings.model_construct(api_token="cap-token", api_allowed_hosts="testserver"))


async def post(body, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        return await http.post(
            "/api/tasks/00000000-0000-0000-0000-000000000000/messages",
            content=body,
            headers={"Content-Type": "application/json", **headers},
        )


def test_a_streamed_body_past_the_cap_is_refused_after_at_most_the_cap_without_a_token():
    sent = 0

    async def endless():
        nonlocal sent
        yield b'{"text": "'
        for _ in range(64 * MAX_BODY_BYTES // CHUNK):  # 64 times the cap, if it were all read
            sent += CHUNK
            yield b"x" * CHUNK

    resp = asyncio.run(post(endless(), {}))
    assert resp.status_code == 413, resp.text
    assert "too large" in resp.json()["error"]
    assert sent <= MAX_BODY_BYTES + 2 * CHUNK  # the rest was never pulled


def test_a_declared_length_past_the_cap_is_refused_before_a_byte_is_read():
    sent = 0

    async def body():
        nonlocal sent
        for _ in range(MAX_BODY_BYTES // CHUNK + 1):
            sent += CHUNK
            yield b"x" * CHUNK

    length = str((MAX_BODY_BYTES // CHUNK + 1) * CHUNK)
    resp = asyncio.run(post(body(), {"Content-Length": length, "Authorization": "Bearer cap-token"}))
    assert resp.status_code == 413 and sent == 0, (resp.status_code, sent)


def test_a_body_under_the_cap_reaches_the_route():
    resp = asyncio.run(post(b'{"text": "hi"}', {}))
    assert resp.status_code == 401  # the token check, after the body was read whole
