"""The store's one database retry (morgus/db/retry.py) and its one-transaction turn writes, against a real Postgres.

A retrying store waits out an outage (calling `on_wait`, the activities' heartbeat, meanwhile) and answers once the
database is back; an error that is not an outage is raised at once, never retried; a turn whose write fails leaves
nothing behind. tests/test_durability.py stops Postgres under a whole running task.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import psycopg_pool
import pytest

from morgus.activities.common import activity_store
from morgus.contracts import ArtifactRecord, ChatMessage, Phase, StepRecord, StepType, TokenUsage
from morgus.db.embedded import EmbeddedPostgres
from morgus.db.migrate import apply_migrations
from morgus.db.retry import DbRetry
from morgus.db.store import Store
from tests.conftest import free_port, wait_for


def _turn(seq: int, step_seq: int) -> tuple[list[ChatMessage], list[StepRecord]]:
    messages = [
        ChatMessage(seq=seq, role="user", content="go"),
        ChatMessage(seq=seq + 1, role="assistant", content="ok"),
    ]
    steps = [
        StepRecord(seq=step_seq + i, phase=Phase.BUILD, type=StepType.LLM_RESPONSE, content=f"s{i}") for i in range(2)
    ]
    return messages, steps


async def test_a_retrying_store_waits_out_an_outage_and_answers_when_the_database_is_back(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "pg", free_port())
    pg.start()
    apply_migrations(pg.dsn)
    store = Store(pg.dsn, max_size=2)
    await store.open()
    waits: list[str] = []
    retrying = store.retrying(DbRetry(give_up_after_s=120, on_wait=waits.append))
    try:
        task_id = str(uuid.uuid4())
        await retrying.insert_pending(task_id, f"task-{task_id}", "t", "d", None)
        assert retrying.pool is store.pool and store.db_retry is None  # a view of the same pool; the original unchanged

        await asyncio.to_thread(pg.stop, "immediate")
        read = asyncio.create_task(retrying.fetch_task(task_id))
        await wait_for(lambda: asyncio.sleep(0, bool(waits)), timeout=60, what="the store to notice the outage")
        assert not read.done()  # still waiting, not failed
        await asyncio.to_thread(pg.start)
        row = await asyncio.wait_for(read, 120)
        assert row is not None and str(row["id"]) == task_id
        assert set(waits) == {"fetch_task"}  # on_wait is told which call is waiting
    finally:
        await store.close()
        pg.stop("immediate")


async def test_an_error_that_is_not_an_outage_is_raised_at_once(store):
    waits: list[str] = []
    retrying = store.retrying(DbRetry(give_up_after_s=600, on_wait=waits.append))
    # a cursor that is not a timestamp: Postgres refuses the query; retrying it could never help
    with pytest.raises(psycopg.errors.DataError):
        await retrying.search_tasks(status=None, phase=None, q=None, limit=5, cursor="not-a-time|also-not-a-uuid")
    assert waits == []


async def test_the_activities_store_retries_for_the_configured_time(store, settings):
    view = activity_store(store, settings)
    assert view.db_retry is not None and view.db_retry.give_up_after_s == settings.db_retry_s
    assert view.pool is store.pool


async def test_an_llm_turn_is_one_transaction(store):
    task_id = str(uuid.uuid4())
    messages, steps = _turn(0, 0)
    usage = TokenUsage(prompt_tokens=7, completion_tokens=3, total_tokens=10)
    # no task row: the steps' foreign key fails, so the messages written before them in the method go too
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await store.save_llm_turn(task_id, messages, steps, usage)
    assert await store.get_message(task_id, 0) is None and await store.get_message(task_id, 1) is None

    await store.insert_pending(task_id, f"task-{task_id}", "t", "d", None)
    await store.save_llm_turn(task_id, messages, steps, usage)
    assert [m.seq for m in await store.load_messages(task_id, 100)] == [0, 1]
    assert [s["seq"] for s in await store.fetch_steps(task_id)] == [0, 1]
    row = await store.fetch_task(task_id)
    assert row["step_count"] == 2 and row["total_tokens"] == 10 and row["prompt_tokens"] == 7


async def test_a_tool_turn_is_one_transaction(store):
    task_id = str(uuid.uuid4())
    message = ChatMessage(seq=2, role="tool", tool_call_id="call_1", content="done")
    steps = [StepRecord(seq=3, phase=Phase.BUILD, type=StepType.TOOL_RESULT, content="done")]
    artifact = ArtifactRecord(type="file", name="a.txt", path="a.txt")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        await store.save_tool_result(task_id, message, steps, [artifact])
    assert await store.get_message(task_id, 2) is None and await store.fetch_artifacts(task_id) == []

    await store.insert_pending(task_id, f"task-{task_id}", "t", "d", None)
    await store.save_tool_result(task_id, message, steps, [artifact])
    await store.save_tool_result(task_id, message, steps, [artifact])  # an activity retried: nothing doubles
    assert (await store.get_message(task_id, 2)) == message
    assert [s["seq"] for s in await store.fetch_steps(task_id)] == [3]
    assert [a["name"] for a in await store.fetch_artifacts(task_id)] == ["a.txt"]
    assert (await store.fetch_task(task_id))["step_count"] == 4


def _no_retry(what: str) -> None:
    raise AssertionError(f"{what} was retried: the error is not an outage")


async def test_a_closed_pool_and_a_statement_over_a_postgres_limit_are_not_retried(store):
    """Found by red-teaming: both are OperationalErrors, so each was retried for db_retry_s (600 s), heartbeating
    (a worker's activities outliving its pool; a statement that fails the same way every time)."""
    retry = DbRetry(give_up_after_s=600, on_wait=_no_retry)
    closed = Store(store.pool.conninfo, max_size=1, db_retry=retry)  # never opened: its pool is closed
    with pytest.raises(psycopg_pool.PoolClosed):
        await closed.fetch_task(str(uuid.uuid4()))

    async def too_long_for_tsvector() -> None:
        async with store.pool.connection() as conn:
            await conn.execute("select repeat('x', 1100000)::tsvector")

    with pytest.raises(psycopg.errors.ProgramLimitExceeded):
        await retry.run(too_long_for_tsvector, what="a statement over a limit")
