"""The API's trust boundary against the real stack (uvicorn on loopback, real Postgres and Temporal):
one LISTEN for any number of event streams and a cap, the token on reads and the stream, the Host allow-list,
cross-site writes refused, every error one JSON sentence, LIKE wildcards escaped, a second cancel refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import psycopg

from morgus.app.event_stream import APPLICATION_NAME, Broadcaster
from morgus.db.store import Store
from tests.conftest import wait_for
from tests.helpers.api import is_error, served


async def pg_count(dsn: str, where: str, *args: Any) -> int:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return (await (await conn.execute(f"select count(*) from pg_stat_activity where {where}", args)).fetchone())[0]


# ---------------------------------------------------------------- the event stream: one listener, a cap


async def test_500_streams_share_one_listener_the_cap_answers_503_and_the_api_keeps_working(
    client, store, postgres, settings_with
):
    n = 500
    settings = settings_with(MORGUS_API_MAX_STREAMS=str(n))
    before = await pg_count(postgres.dsn, "datname is not null")
    async with served(settings, client, store) as http:
        connected = 0
        all_connected = asyncio.Event()
        marker = f"fan-out {uuid.uuid4()}"
        got_it: list[bool] = []

        async def one_stream() -> None:
            nonlocal connected
            async with http.stream("GET", "/api/events") as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line == ": connected":
                        connected += 1
                        if connected == n:
                            all_connected.set()
                    elif line.startswith("data: ") and json.loads(line[6:]).get("description") == marker:
                        got_it.append(True)
                        return

        streams = [asyncio.create_task(one_stream()) for _ in range(n)]
        try:
            try:
                await asyncio.wait_for(all_connected.wait(), 120)
            except TimeoutError:
                raise AssertionError(
                    f"only {connected} of {n} streams connected; failed: {[s.exception() for s in streams if s.done()][:3]}"
                ) from None
            # one database listener for all of them, and no connection per stream
            assert await pg_count(postgres.dsn, "application_name = %s", APPLICATION_NAME) == 1
            assert await pg_count(postgres.dsn, "datname is not null") - before <= 22  # the listener + the pool (20)
            # beyond the cap: a sentence, not a hang
            refused = await http.get("/api/events")
            assert "MORGUS_API_MAX_STREAMS" in is_error(refused, 503)
            # the rest of the API keeps answering, and a new task reaches every stream
            assert (await http.get("/api/tasks", params={"limit": 5})).status_code == 200
            r = await http.post("/api/tasks", json={"description": marker, "model": "scripted"})
            assert r.status_code == 201, r.text
            await asyncio.wait_for(asyncio.gather(*streams), 120)
            assert len(got_it) == n
        finally:
            for s in streams:
                s.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

        # the slots are free again once the clients have gone
        async def slot_free() -> bool:
            async with http.stream("GET", "/api/events") as resp:
                return resp.status_code == 200

        await wait_for(slot_free, what="a free stream slot")


async def test_a_slow_stream_client_is_dropped_and_resumes_with_no_gap(store, settings):
    """A client that stops reading overflows its (small) queue and is dropped rather than buffered; reconnecting
    after the last id it got yields every event, in order, once."""
    broadcaster = Broadcaster(settings.dsn, store, max_streams=5, queue_size=3)
    await broadcaster.start()

    def event_id(frame: str) -> int | None:
        return int(frame.split("\n", 1)[0][4:]) if frame.startswith("id: ") else None

    try:
        start = broadcaster.cursor
        slow = broadcaster.subscribe(None)
        stream = broadcaster.frames(slow, after=start)
        assert await anext(stream) == ": connected\n\n"
        first = asyncio.create_task(anext(stream))  # backfills (nothing yet), then waits on its queue: one read only
        ids = [str(uuid.uuid4()) for _ in range(8)]
        for tid in ids:
            await store.insert_pending(tid, f"task-{tid}", f"slow {tid}", "d", None)

        async def dropped() -> bool:
            return slow.dropped

        await wait_for(dropped, what="the slow client to be dropped")
        assert slow not in broadcaster.subscribers
        got = [event_id(await first)]
        got += [event_id(f) async for f in stream]  # whatever was left, then the stream ends
        got = [g for g in got if g is not None]
        expected = [e["id"] for e in await store.events_after(start, limit=10_000)]
        assert len(expected) >= 8 and len(got) < len(expected)

        resumed = broadcaster.frames(broadcaster.subscribe(None), after=got[-1] if got else start)
        async with asyncio.timeout(30):
            async for frame in resumed:
                if (i := event_id(frame)) is not None:
                    got.append(i)
                if got and got[-1] >= expected[-1]:
                    break
        assert got[: len(expected)] == expected, "no gap, no duplicate"
    finally:
        await broadcaster.stop()


# ---------------------------------------------------------------- the token


async def test_the_token_guards_reads_and_the_stream(client, store, settings_with):
    settings = settings_with(MORGUS_API_TOKEN="s3cret-token")
    good = {"Authorization": "Bearer s3cret-token"}
    async with served(settings, client, store) as http:
        assert (await http.get("/healthz")).status_code == 200  # the one open endpoint
        for path in (
            "/api/config",
            "/api/tasks",
            f"/api/tasks/{uuid.uuid4()}",
            f"/api/tasks/{uuid.uuid4()}/steps",
            f"/api/tasks/{uuid.uuid4()}/artifacts",
            "/api/events",
        ):
            assert "MORGUS_API_TOKEN" in is_error(await http.get(path), 401), path
            is_error(await http.get(path, headers={"Authorization": "Bearer s3cret-toke"}), 401)
            is_error(await http.get(path, headers={"Authorization": "Basic czNjcmV0LXRva2Vu"}), 401)
        # a header byte outside ASCII is a wrong token, not a crash in compare_digest
        is_error(await http.get("/api/tasks", headers=[(b"Authorization", b"Bearer s3cr\xe9t")]), 401)
        is_error(await http.post("/api/tasks", json={"description": "x"}), 401)
        assert (await http.get("/api/tasks", headers=good)).status_code == 200
        assert (await http.get("/api/config", headers=good)).json()["auth"] is True
        async with asyncio.timeout(10), http.stream("GET", "/api/events", headers=good) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                assert line == ": connected"
                break


# ---------------------------------------------------------------- Host names (DNS rebinding)


async def test_a_foreign_host_name_is_refused(client, store, settings):
    async with served(settings, client, store, bind_host="morgus.internal") as http:
        port = http.base_url.port
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "", "localhost.:80"):
            msg = is_error(await http.get("/api/tasks", headers={"Host": host}), 400)
            assert "MORGUS_API_ALLOWED_HOSTS" in msg
        is_error(await http.get("/healthz", headers={"Host": "evil.example"}), 400)
        is_error(await http.post("/api/tasks", json={"description": "x"}, headers={"Host": "evil.example"}), 400)
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST", "morgus.internal"):
            assert (await http.get("/api/tasks", headers={"Host": host})).status_code == 200, host


# ---------------------------------------------------------------- cross-site writes, a second cancel


async def test_cross_site_cancel_is_refused_and_a_second_cancel_says_already_cancelled(
    client, store, settings, worker, llm
):
    marker = llm.add(
        "api-csrf", [{"content": "slow", "delay_s": 2, "tool_calls": [{"name": "file_list", "arguments": {}}]}] * 30
    )
    async with served(settings, client, store) as http:
        task_id = (await http.post("/api/tasks", json={"description": f"csrf {marker}", "model": "scripted"})).json()[
            "id"
        ]

        async def running() -> bool:
            return (await http.get(f"/api/tasks/{task_id}")).json()["status"] == "running"

        await wait_for(running, what="running")
        url = f"/api/tasks/{task_id}/cancel"
        own = str(http.base_url).rstrip("/")
        # what a page on another site can send without a CORS preflight
        is_error(await http.post(url), 415)  # no body, no content type
        is_error(await http.post(url, content=b"", headers={"Content-Type": "text/plain"}), 415)
        is_error(await http.post(url, data={"reason": "csrf"}), 415)  # application/x-www-form-urlencoded
        is_error(await http.post(url, files={"f": ("a", b"b")}), 415)  # multipart/form-data
        is_error(await http.post(url, content=b"{}", headers={"Content-Type": "text/plain;application/json"}), 415)
        # JSON, but from another origin (or an opaque one)
        for origin in ("http://evil.example", "null", f"{own}.evil.example", "http://localhost:1"):
            assert "cross-site" in is_error(await http.post(url, json={}, headers={"Origin": origin}), 403)
        await asyncio.sleep(1)
        assert (await http.get(f"/api/tasks/{task_id}")).json()["status"] == "running", "nothing above may cancel it"

        # the console's own request: JSON, same origin; the body may be empty
        ok = await http.post(url, headers={"Content-Type": "application/json", "Origin": own})
        assert ok.status_code == 200 and ok.json() == {"ok": True}

        async def cancelled() -> bool:
            return (await http.get(f"/api/tasks/{task_id}")).json()["status"] == "cancelled"

        await wait_for(cancelled, what="cancelled")
        again = is_error(await http.post(url, json={"reason": "again"}), 409)
        assert again == f"task {task_id} is already cancelled"


# ---------------------------------------------------------------- every error is one JSON sentence


async def test_every_error_is_one_json_sentence(client, store, settings):
    async with served(settings, client, store) as http:
        tid = str(uuid.uuid4())
        is_error(await http.get("/api/nope"), 404)
        is_error(await http.get("/api/tasks/not-a-uuid"), 404)
        is_error(await http.get("/api/tasks/%00"), 404)
        is_error(await http.get(f"/api/tasks/{tid}"), 404)
        is_error(await http.post(f"/api/tasks/{tid}/cancel", json={}), 404)
        assert "DELETE" in is_error(await http.delete("/api/tasks", headers={"Content-Type": "application/json"}), 405)
        is_error(await http.put(f"/api/tasks/{tid}", json={}), 405)
        is_error(await http.get(f"/api/tasks/{tid}/cancel"), 405)
        # bad cursors: the client's mistake, a 422
        for cursor in ("garbage", "2026-01-01|nope", "x|" + tid, "|", "2026-13-45T00:00:00|" + tid):
            assert "cursor" in is_error(await http.get("/api/tasks", params={"cursor": cursor}), 422)
        # control characters (NUL included) in one-line fields are refused; multi-line text takes NUL as U+FFFD
        # (tests/test_hostile_input.py follows such a task to the end)
        for q in ("a\x00b", "\x1b[31mred", "two\nlines"):
            assert is_error(await http.get("/api/tasks", params={"q": q}), 422).startswith("q:")
        for body in (
            {"description": "ok", "title": "esc \x1b]0;pwned\x07"},
            {"description": "ok", "title": "a\x00"},
            {"description": "ok", "model": "m\x00"},
        ):
            is_error(await http.post("/api/tasks", json=body), 422)
        is_error(await http.post(f"/api/tasks/{tid}/answer", json={"text": "a\x00b"}), 404)
        is_error(await http.post(f"/api/tasks/{tid}/cancel", json={"reason": "a\x00b"}), 404)
        # bytes json.loads accepts but Postgres or Temporal would not
        raw = {"Content-Type": "application/json"}
        for text in (
            '{"description": "lone \\ud800 surrogate"}',
            '{"description": "x", "budget": {"max_cost_usd": 1e999}}',
            '{"description": "x", "budget": {"max_cost_usd": NaN}}',
            '{"description": "x", "budget": {"max_steps": 99999999999999999999}}',
            '{"description": ',
            "[]",
            "null",
        ):
            is_error(await http.post("/api/tasks", content=text.encode(), headers=raw), 422)
        # numbers beyond what Postgres stores
        is_error(await http.get(f"/api/tasks/{tid}/steps", params={"after": 2**40}), 422)
        is_error(await http.get("/api/events", params={"after": 2**64}), 422)
        is_error(await http.get("/api/events", headers={"Last-Event-ID": "12abc"}), 422)
        is_error(await http.get("/api/events", headers=[(b"Last-Event-ID", "٣".encode())]), 422)  # a digit, not ASCII


async def test_an_unexpected_failure_is_a_bare_internal_error(client, settings, postgres):
    """The database pool is really closed under the running API: the client gets no trace, just a sentence."""
    store = Store(postgres.dsn, max_size=2)
    await store.open()
    async with served(settings, client, store) as http:
        await store.close()
        r = await http.get("/api/tasks")
        assert r.status_code == 500 and r.json() == {"error": "internal error"}


# ---------------------------------------------------------------- search


async def test_q_matches_wildcards_literally(client, store, settings):
    m = uuid.uuid4().hex[:10]
    titles = {
        "pct": f"{m} 50% off",
        "x": f"{m} 50x off",
        "under": f"{m} a_b",
        "axb": f"{m} axb",
        "bs": f"{m} back\\slash",
    }
    for title in titles.values():
        tid = str(uuid.uuid4())
        await store.insert_pending(tid, f"task-{tid}", title, "like test", None)
    async with served(settings, client, store) as http:

        async def found(q: str) -> set[str]:
            r = await http.get("/api/tasks", params={"q": q, "limit": 200})
            assert r.status_code == 200, r.text
            return {t["title"] for t in r.json()["tasks"]}

        assert await found(f"{m} 50%") == {titles["pct"]}
        assert await found(f"{m} a_b") == {titles["under"]}
        assert await found(f"{m} back\\") == {titles["bs"]}
        assert await found(f"{m} %") == set()
        assert len(await found(m)) == 5
