"""The HTTP API against the real stack: each endpoint, validation errors, auth, and SSE resume with no gap."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.conftest import ask, wait_for
from tests.helpers.api import served


async def test_endpoints_from_start_to_answer_to_completion(client, store, settings, worker, llm):
    marker = llm.add("api", [ask("Which colour?"), {"content": "research done"}])
    async with served(settings, client, store) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok", "temporal": True, "database": True}
        assert "models" in (await http.get("/api/config")).json()
        assert "/api/tasks" in (await http.get("/openapi.json")).json()["paths"]

        created = await http.post(
            "/api/tasks", json={"title": "API task", "description": f"Paint it {marker}", "model": "scripted"}
        )
        assert created.status_code == 201, created.text
        task = created.json()
        task_id = task["id"]
        assert task["status"] in ("pending", "running") and task["title"] == "API task"

        async def waiting() -> Any:
            r = (await http.get(f"/api/tasks/{task_id}")).json()
            return r if r["status"] == "waiting_for_input" else None

        detail = await wait_for(waiting, what="the question")
        assert detail["pending_question"] == "Which colour?" and detail["temporal_url"].endswith(
            f"/workflows/task-{task_id}"
        )
        listed = (await http.get("/api/tasks", params={"status": "waiting_for_input", "q": "Paint it"})).json()
        assert [t["id"] for t in listed["tasks"]] == [task_id] and listed["counts"]["waiting_for_input"] >= 1

        assert (await http.post(f"/api/tasks/{task_id}/answer", json={"text": "blue"})).json() == {"ok": True}

        async def done() -> Any:
            r = (await http.get(f"/api/tasks/{task_id}")).json()
            return r if r["status"] == "completed" else None

        await wait_for(done, what="completion")
        steps = (await http.get(f"/api/tasks/{task_id}/steps")).json()["steps"]
        assert [s["seq"] for s in steps] == list(range(len(steps)))
        later = (await http.get(f"/api/tasks/{task_id}/steps", params={"after": steps[-3]["seq"]})).json()["steps"]
        assert [s["seq"] for s in later] == [steps[-2]["seq"], steps[-1]["seq"]]
        assert (await http.get(f"/api/tasks/{task_id}/artifacts")).json() == {"artifacts": []}

        late = await http.post(f"/api/tasks/{task_id}/answer", json={"text": "too late"})
        assert late.status_code == 409 and "has ended" in late.json()["error"]
        cancel_late = await http.post(f"/api/tasks/{task_id}/cancel", json={})
        assert cancel_late.status_code == 409


async def test_validation_errors_are_clear_4xx(client, store, settings, worker):
    async with served(settings, client, store) as http:
        empty = await http.post("/api/tasks", json={"description": ""})
        assert empty.status_code == 422 and empty.json()["error"].startswith("description:")
        huge = await http.post("/api/tasks", json={"description": "x" * 20_001})
        assert huge.status_code == 422 and "description" in huge.json()["error"]
        unknown = await http.get("/api/tasks/00000000-0000-0000-0000-000000000000")
        assert unknown.status_code == 404 and unknown.json()["error"].startswith("no task with id")
        assert (await http.get("/api/tasks/not-a-uuid")).status_code == 404
        bad_filter = await http.get("/api/tasks", params={"status": "sleeping"})
        assert bad_filter.status_code == 422 and "status" in bad_filter.json()["error"]
        assert (await http.get("/api/tasks", params={"limit": 0})).status_code == 422


async def test_answer_to_a_task_that_is_not_waiting_is_409(client, store, settings, worker, llm):
    marker = llm.add(
        "api-busy", [{"content": "slow", "delay_s": 3, "tool_calls": [{"name": "file_list", "arguments": {}}]}]
    )
    async with served(settings, client, store) as http:
        task_id = (await http.post("/api/tasks", json={"description": f"busy {marker}", "model": "scripted"})).json()[
            "id"
        ]

        async def running() -> bool:
            return (await http.get(f"/api/tasks/{task_id}")).json()["status"] == "running"

        await wait_for(running, what="running")
        r = await http.post(f"/api/tasks/{task_id}/answer", json={"text": "hello"})
        assert r.status_code == 409 and "is not waiting for an answer" in r.json()["error"]
        assert (await http.post(f"/api/tasks/{task_id}/cancel", json={"reason": "test"})).json() == {"ok": True}

        async def cancelled() -> bool:
            return (await http.get(f"/api/tasks/{task_id}")).json()["status"] == "cancelled"

        await wait_for(cancelled, what="cancelled")


async def test_auth_on_endpoints(client, store, settings_with):
    settings = settings_with(MORGUS_API_TOKEN="s3cret")
    async with served(settings, client, store) as http:
        denied = await http.post("/api/tasks", json={"description": "x"})
        assert denied.status_code == 401 and "MORGUS_API_TOKEN" in denied.json()["error"]
        wrong = await http.post("/api/tasks", json={"description": "x"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await http.get("/api/tasks")).status_code == 401  # reads need it too (docs/security-api.md)
        assert (await http.get("/api/tasks", headers={"Authorization": "Bearer s3cret"})).status_code == 200
        ok = await http.post(
            "/api/tasks",
            json={"description": "authorised", "model": "scripted"},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert ok.status_code == 201
        assert (await http.post(f"/api/tasks/{ok.json()['id']}/cancel", json={})).status_code == 401
        # no worker in this test: the task is still running, so an authorised cancel is accepted
        cancel = await http.post(
            f"/api/tasks/{ok.json()['id']}/cancel", json={}, headers={"Authorization": "Bearer s3cret"}
        )
        assert cancel.status_code == 200 and cancel.json() == {"ok": True}


async def read_events(
    http: httpx.AsyncClient, params: dict, headers: dict, until: int, stop_after_s: float
) -> list[dict]:
    """Read SSE events until `until` ids are seen or time runs out; then drop the connection."""
    seen: list[dict] = []
    try:
        async with asyncio.timeout(stop_after_s):
            async with http.stream("GET", "/api/events", params=params, headers=headers) as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                event: dict = {}
                async for line in resp.aiter_lines():
                    if line.startswith("id: "):
                        event["id"] = int(line[4:])
                    elif line.startswith("event: "):
                        event["kind"] = line[7:]
                    elif line.startswith("data: "):
                        event["data"] = json.loads(line[6:])
                    elif line == "" and "id" in event:
                        seen.append(event)
                        event = {}
                        if len(seen) >= until:
                            return seen
    except TimeoutError:
        pass
    return seen


async def test_sse_resumes_after_a_dropped_connection_with_no_gap_or_duplicate(client, store, settings, worker, llm):
    script = [
        {"content": f"s{i}", "delay_s": 0.2, "tool_calls": [{"name": "notify_user", "arguments": {"message": f"m{i}"}}]}
        for i in range(8)
    ]
    marker = llm.add("api-sse", [*script, {"content": "research done"}])
    async with served(settings, client, store) as http:
        start_id = await store.last_event_id()
        task_id = (await http.post("/api/tasks", json={"description": f"stream {marker}", "model": "scripted"})).json()[
            "id"
        ]
        params = {"task_id": task_id, "after": start_id}
        first = await read_events(http, params, {}, until=10, stop_after_s=30)  # then the connection drops
        assert len(first) == 10
        resumed = await read_events(
            http, {"task_id": task_id}, {"Last-Event-ID": str(first[-1]["id"])}, until=10_000, stop_after_s=8
        )

        async def finished() -> bool:
            return (await store.fetch_task(task_id))["status"] == "completed"

        await wait_for(finished, what="completion")
        tail = await read_events(
            http, {"task_id": task_id, "after": (resumed or first)[-1]["id"]}, {}, until=10_000, stop_after_s=3
        )
    got = [e["id"] for e in first + resumed + tail]
    expected = [e["id"] for e in await store.events_after(start_id, task_id=task_id, limit=100_000)]
    assert got == expected, "the resumed stream must have neither a gap nor a duplicate"
    kinds = {e["kind"] for e in first + resumed + tail}
    assert {"task", "step"} <= kinds
    steps = [e["data"]["seq"] for e in first + resumed + tail if e["kind"] == "step"]
    assert steps == sorted(steps) and steps == list(range(len(steps)))


async def test_a_task_temporal_refuses_is_not_left_pending(store, settings, temporal_server):
    """Temporal really refuses the start (a namespace that does not exist): the row says so, it is not left pending."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    wrong = await Client.connect(
        temporal_server.address, namespace="no-such-namespace", data_converter=pydantic_data_converter
    )
    async with served(settings, wrong, store) as http:
        r = await http.post("/api/tasks", json={"description": "never starts", "model": "scripted"})
        assert r.status_code == 503 and "could not start the task" in r.json()["error"]
        listed = (await http.get("/api/tasks", params={"q": "never starts"})).json()["tasks"]
    assert [t["status"] for t in listed] == ["error"]
    assert "could not start the task" in listed[0]["error_message"]
