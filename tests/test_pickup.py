"""The task's first step is written inside its first workflow task (patch pickup-v1, issue 15 goal 4): by a local
activity, before any activity is scheduled; it rides out a database that is down when the task starts and writes
the row once. Timing lives in bench/pickup.py and docs/benchmarks.md, not here."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from morgus.contracts import TaskResult
from tests.conftest import assert_steps_contiguous, start, task_id_of
from tests.helpers.private_db import private_database
from tests.test_replay import replay_every_run


def _local_activity_type(event) -> str | None:
    """The activity type of a local activity's marker (the SDK core's `data` detail), else None."""
    attrs = event.marker_recorded_event_attributes
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED or attrs.marker_name != "core_local_activity":
        return None
    payload = attrs.details["data"].payloads[0]
    return json.loads(payload.data).get("activity_type")


async def test_first_step_written_by_a_local_activity_through_a_database_outage(client, llm, temporal_server, tmp_path):
    from morgus.worker import running_workers

    async with private_database(temporal_server, llm, tmp_path, pool_size=5) as (pg, settings, store):
        marker = llm.add("pickup", [{"content": f"{p} done"} for p in ("research", "plan", "build", "execute", "fin")])
        async with running_workers(client, store, settings):
            await asyncio.to_thread(pg.stop, "immediate")
            handle = await start(client, settings, marker)
            await asyncio.sleep(3)  # the first step's local activity waits for the database meanwhile
            await asyncio.to_thread(pg.start)
            result: TaskResult = await asyncio.wait_for(handle.result(), 120)
        assert result.status == "completed"
        steps = await store.fetch_steps(task_id_of(handle))
        assert_steps_contiguous(steps)
        assert [s["type"] for s in steps].count("TASK_START") == 1 and steps[0]["type"] == "TASK_START"
        assert steps[-1]["type"] == "TASK_END"
        first_run = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        events = (await first_run.fetch_history()).events
        kinds = [
            ("local", _local_activity_type(e))
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            else ("activity", e.activity_task_scheduled_event_attributes.activity_type.name)
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED or _local_activity_type(e)
        ]
        # the first side effect of the task is its first step, written without an activity task
        assert kinds[0] == ("local", "project"), kinds[:3]
        assert ("activity", "project") in kinds  # later projections are activities, as before
        await replay_every_run(client, handle, record_as="task-pickup-v19")


def test_the_sandboxed_modules_bytecode_is_written_once_where_python_would_not(tmp_path, monkeypatch):
    import importlib
    import importlib.util
    import sys

    from morgus.workflow_bytecode import cache_workflow_bytecode, sandboxed_modules

    pkg = tmp_path / "pickup_pkg"
    (pkg / "inner").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "inner" / "__init__.py").write_text("")
    (pkg / "inner" / "wf.py").write_text("class W:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cls = importlib.import_module("pickup_pkg.inner.wf").W
    assert sandboxed_modules([cls, cls]) == ["pickup_pkg", "pickup_pkg.inner", "pickup_pkg.inner.wf"]
    sources = [pkg / "__init__.py", pkg / "inner" / "__init__.py", pkg / "inner" / "wf.py"]
    assert not any(Path(importlib.util.cache_from_source(str(s))).exists() for s in sources)
    written = cache_workflow_bytecode([cls])
    assert written == [importlib.util.cache_from_source(str(s)) for s in sources]
    assert all(Path(w).stat().st_size > 0 for w in written)
    # where it cannot be written (here: __pycache__ is a file), the worker goes on and each task compiles it
    for w in written:
        Path(w).unlink()
    (pkg / "inner" / "__pycache__").rmdir()
    (pkg / "inner" / "__pycache__").write_text("not a directory")
    assert cache_workflow_bytecode([cls]) == [importlib.util.cache_from_source(str(pkg / "__init__.py"))]
    # where Python writes bytecode itself, nothing to do
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    assert cache_workflow_bytecode([cls]) == []
    for name in ("pickup_pkg.inner.wf", "pickup_pkg.inner", "pickup_pkg"):
        sys.modules.pop(name, None)
