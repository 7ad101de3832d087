"""All SQL Morgus runs against its Postgres: the conversation store, the projection writer, and read queries.

Writes are idempotent: step and artifact ids are derived from the task id and a workflow-allocated sequence
(`ON CONFLICT DO NOTHING`), task-row updates carry absolute values, and a conversation slot is an upsert, so an
activity retried after a crash or a replayed workflow never duplicates a row.

A turn is written by one method, in one transaction: `save_llm_turn` (the messages the workflow queued, the model's
reply, the turn's steps and the task's usage so far) and `save_tool_result` (the result message, its steps and
artifacts). The task's usage is written as an absolute total the workflow owns: with each LLM turn here, and once
more by the final projection (`apply_projection`, which also covers a condensation not followed by a turn). The
sequence numbers they carry are decided by the workflow's ledger (morgus/workflows/ledger.py), never here.

Riding out an outage is the store's job too, once: the activities' store is `store.retrying(DbRetry(...))` and every
public method below is `@retried` (morgus/db/retry.py), so callers just await it.

Longer than ~300 lines because it is all the SQL in one place: a reader checks every statement against the schema
(morgus/db/migrations/) in this one file.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb, set_json_dumps
from psycopg.types.string import StrBinaryDumper, StrDumperUnknown
from psycopg_pool import AsyncConnectionPool

from morgus.context import Condensation
from morgus.contracts import (
    ArtifactRecord,
    ChatMessage,
    ProjectionBatch,
    StepRecord,
    TaskRowUpdate,
    TokenUsage,
)
from morgus.db.retry import DbRetry, retried
from morgus.ids import artifact_id, step_id
from morgus.live_text import LiveWrite
from morgus.text import clean_json, clean_text

# ------------------------------------------------------------------ the sanitiser
# Every value the store sends to Postgres passes through these dumpers, registered on each pooled connection:
# a NUL or a lone surrogate in any text (task fields, steps, messages, tool-call arguments, artifacts, JSONB
# metadata and its keys, search terms) is replaced by U+FFFD instead of raising, so no input from a user, a
# model or a tool can make a write fail forever and wedge its task. Rows derived by triggers (task_events) copy
# these values, so they are clean too.


class _CleanStrDumper(StrDumperUnknown):
    """str parameters in text format with an unknown oid (psycopg's default: Postgres infers the type)."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(clean_text(obj))


class _CleanStrBinaryDumper(StrBinaryDumper):
    def dump(self, obj: str) -> Buffer | None:
        return super().dump(clean_text(obj))


def _clean_json_dumps(obj: Any) -> str:
    return json.dumps(clean_json(obj), ensure_ascii=False, allow_nan=False)


def install_sanitiser(context: psycopg.AsyncConnection | psycopg.Connection) -> None:
    """Make every str and Jsonb parameter this connection sends clean (see above)."""
    context.adapters.register_dumper(str, _CleanStrBinaryDumper)
    context.adapters.register_dumper(str, _CleanStrDumper)  # last: the default (AUTO) format stays text/unknown
    set_json_dumps(_clean_json_dumps, context)


async def _configure(conn: psycopg.AsyncConnection) -> None:
    install_sanitiser(conn)


_BIGINT_MAX = 2**63 - 1
_COST_MAX = 99_999_999.0  # numeric(14, 6)


def _usage_values(u: TokenUsage) -> list[Any]:
    """Token counts and cost as the columns can hold them: a provider reporting absurd usage must not make the
    write fail forever."""
    counts = [
        max(0, min(int(n), _BIGINT_MAX))
        for n in (u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens)
    ]
    cost = u.cost_usd if math.isfinite(u.cost_usd) else _COST_MAX
    return [*counts, max(0.0, min(cost, _COST_MAX))]


def like_escape(text: str) -> str:
    """`q` is words to find, not a pattern: `%`, `_` and `\\` match themselves (ILIKE's default escape is `\\`)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Store:
    def __init__(self, dsn: str, *, max_size: int = 10, db_retry: DbRetry | None = None) -> None:
        self.db_retry = db_retry  # None: a call fails at once when the database is unreachable
        self.pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            open=False,
            timeout=10,
            check=AsyncConnectionPool.check_connection,  # drop connections a database restart has killed
            configure=_configure,  # the sanitiser: every write below goes through it
            kwargs={"autocommit": False, "connect_timeout": 5},
        )

    def retrying(self, db_retry: DbRetry) -> Store:
        """This store (the same pool) with every call riding out an outage as `db_retry` says; for activities.
        The owner of the original opens and closes the pool."""
        view = copy.copy(self)
        view.db_retry = db_retry
        return view

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    # ------------------------------------------------------------------ conversation

    @retried
    async def load_messages(self, task_id: str, upto: int) -> list[ChatMessage]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "select message from task_messages where task_id = %s and seq < %s order by seq", (task_id, upto)
                )
            ).fetchall()
        return [ChatMessage.model_validate(r[0]) for r in rows]

    @retried
    async def get_message(self, task_id: str, seq: int) -> ChatMessage | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute("select message from task_messages where task_id = %s and seq = %s", (task_id, seq))
            ).fetchone()
        return ChatMessage.model_validate(row[0]) if row else None

    @staticmethod
    async def _put_messages(cur: psycopg.AsyncCursor, task_id: str, messages: list[ChatMessage]) -> None:
        for m in messages:
            await cur.execute(
                "insert into task_messages (task_id, seq, message) values (%s, %s, %s) "
                "on conflict (task_id, seq) do update set message = excluded.message",
                (task_id, m.seq, Jsonb(m.model_dump(mode="json"))),
            )

    # ------------------------------------------------------------------ projection

    @staticmethod
    async def _put_steps(cur: psycopg.AsyncCursor, task_id: str, steps: list[StepRecord]) -> None:
        if not steps:
            return
        await cur.executemany(
            "insert into task_steps (id, task_id, seq, phase, type, content, metadata) "
            "values (%s, %s, %s, %s, %s, %s, %s) on conflict (id) do nothing",
            [(step_id(task_id, s.seq), task_id, s.seq, s.phase, s.type, s.content, Jsonb(s.metadata)) for s in steps],
        )
        # the live text of a call ends where its step lands, in the same transaction (no moment shows both)
        await cur.execute(
            "delete from task_live where task_id = %s and seq = any(%s)", (task_id, [s.seq for s in steps])
        )
        await cur.execute(
            "update tasks set step_count = greatest(step_count, %s), updated_at = now() where id = %s",
            (max(s.seq for s in steps) + 1, task_id),
        )

    @staticmethod
    async def _put_artifacts(cur: psycopg.AsyncCursor, task_id: str, key: str, artifacts: list[ArtifactRecord]) -> None:
        for i, a in enumerate(artifacts):
            await cur.execute(
                "insert into artifacts (id, task_id, type, name, url, path, metadata) "
                "values (%s, %s, %s, %s, %s, %s, %s) on conflict (id) do nothing",
                (artifact_id(task_id, f"{key}:{i}"), task_id, a.type, a.name, a.url, a.path, Jsonb(a.metadata)),
            )

    @staticmethod
    async def _put_usage(cur: psycopg.AsyncCursor, task_id: str, usage: TokenUsage) -> None:
        await cur.execute(
            "update tasks set prompt_tokens = %s, completion_tokens = %s, total_tokens = %s, cached_tokens = %s, "
            "cost_usd = %s, updated_at = now() where id = %s",
            (*_usage_values(usage), task_id),
        )

    @retried
    async def latest_condensation(self, task_id: str) -> Condensation | None:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    "select upto_seq, summary, turns from task_condensations where task_id = %s order by upto_seq desc limit 1",
                    (task_id,),
                )
            ).fetchone()
        return Condensation(*row) if row else None

    @retried
    async def save_condensation(self, task_id: str, c: Condensation) -> None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "insert into task_condensations (task_id, upto_seq, summary, turns) values (%s, %s, %s, %s) "
                "on conflict (task_id, upto_seq) do nothing",
                (task_id, c.upto_seq, c.summary, c.turns),
            )

    @retried
    async def save_llm_turn(
        self, task_id: str, messages: list[ChatMessage], steps: list[StepRecord], usage_total: TokenUsage
    ) -> None:
        """An LLM turn, in one transaction: the appended messages, the assistant reply, its steps (the turn's own and
        those the workflow deferred to it) and the task's usage total."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await self._put_messages(cur, task_id, messages)
            await self._put_steps(cur, task_id, steps)
            await self._put_usage(cur, task_id, usage_total)

    @retried
    async def save_tool_result(
        self, task_id: str, message: ChatMessage, steps: list[StepRecord], artifacts: list[ArtifactRecord]
    ) -> None:
        """A tool turn, in one transaction: the result message, its steps and its artifacts."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await self._put_messages(cur, task_id, [message])
            await self._put_steps(cur, task_id, steps)
            await self._put_artifacts(cur, task_id, f"tool:{message.seq}", artifacts)

    @retried
    async def apply_projection(self, batch: ProjectionBatch) -> None:
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "insert into tasks (id, workflow_id, title, description, model, status) "
                "values (%s, %s, %s, %s, %s, 'running') on conflict (id) do nothing",
                (batch.task_id, batch.workflow_id, batch.title, batch.description, batch.model),
            )
            await self._apply_update(cur, batch.task_id, batch.update)
            await self._put_steps(cur, batch.task_id, batch.steps)

    @staticmethod
    async def _apply_update(cur: psycopg.AsyncCursor, task_id: str, u: TaskRowUpdate) -> None:
        sets: list[str] = ["updated_at = now()"]
        args: list[Any] = []
        for column, value in (("status", u.status), ("phase", u.phase), ("error_message", u.error_message)):
            if value is not None:
                sets.append(f"{column} = %s")
                args.append(str(value))
        if u.pending_question is not None:
            sets.append("pending_question = %s")
            args.append(u.pending_question)
        elif u.clear_question:
            sets.append("pending_question = null")
        if u.usage is not None:
            sets += [
                "prompt_tokens = %s",
                "completion_tokens = %s",
                "total_tokens = %s",
                "cached_tokens = %s",
                "cost_usd = %s",
            ]
            args += _usage_values(u.usage)
        if u.completed:
            sets.append("completed_at = coalesce(completed_at, now())")
            # a call that never wrote its step (cancelled, failed for good) leaves no live text behind
            await cur.execute("delete from task_live where task_id = %s", (task_id,))
        await cur.execute(f"update tasks set {', '.join(sets)} where id = %s", (*args, task_id))

    @retried
    async def insert_pending(
        self,
        task_id: str,
        workflow_id: str,
        title: str,
        description: str,
        model: str | None,
        owner_id: str | None = None,
    ) -> None:
        """The API shows a task the moment it is submitted, before a worker picks it up. Claimed (`started_at`) at
        once: the API starts its workflow itself, the table's intake must not."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "insert into tasks (id, workflow_id, title, description, model, owner_id, status, started_at) "
                "values (%s, %s, %s, %s, %s, %s, 'pending', now()) on conflict (id) do nothing",
                (task_id, workflow_id, title, description, model, owner_id),
            )

    @retried
    async def mark_failed_to_start(self, task_id: str, message: str) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "update tasks set status = 'error', error_message = %s, completed_at = now(), updated_at = now() "
                "where id = %s and status = 'pending'",
                (message, task_id),
            )

    # ------------------------------------------------------------------ live text (morgus/activities/live.py)

    @retried
    async def live_append(self, live: LiveWrite) -> bool:
        """Add `live.text` to a call's live text (or start it over: `replace`, or a higher run) and announce each
        of `live.notices` (NOTIFY morgus_live) in the same transaction. False when nothing was written: a newer
        run owns the row, or the call's step has landed (a late writer must not bring the text back)."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                "insert into task_live as l (task_id, seq, kind, phase, run, attempt, text) "
                "select %(t)s, %(s)s, %(k)s, %(p)s, %(r)s, %(a)s, %(x)s "
                "where not exists (select 1 from task_steps where task_id = %(t)s and seq = %(s)s) "
                "on conflict (task_id, seq) do update set "
                "text = case when %(replace)s or l.run <> excluded.run then excluded.text else l.text || excluded.text end, "
                "run = excluded.run, attempt = excluded.attempt, kind = excluded.kind, phase = excluded.phase, "
                "updated_at = now() where l.run <= excluded.run returning 1",
                {
                    "t": live.task_id,
                    "s": live.seq,
                    "k": live.kind,
                    "p": live.phase,
                    "r": live.run,
                    "a": live.attempt,
                    "x": live.text,
                    "replace": live.replace,
                },
            )
            if await cur.fetchone() is None:
                return False
            for notice in live.notices:
                await cur.execute("select pg_notify('morgus_live', %s)", (notice,))
            return True

    @retried
    async def live_rows(self, task_id: str) -> list[dict[str, Any]]:
        """The task's calls in flight and their text so far (rows whose step has landed are not in flight)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select task_id, seq, kind, phase, run, attempt, text, updated_at from task_live l where task_id = %s "
                "and not exists (select 1 from task_steps s where s.task_id = l.task_id and s.seq = l.seq) order by seq",
                (task_id,),
            )
            return await cur.fetchall()

    # ------------------------------------------------------------------ reads (CLI, API, tests)

    @retried
    async def search_tasks(
        self,
        *,
        status: str | None,
        phase: str | None,
        q: str | None,
        limit: int,
        cursor: str | None,
        owner: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; `cursor` is the opaque `next_cursor` of the previous page (created_at|id)."""
        after_ts, after_id = cursor.split("|", 1) if cursor and "|" in cursor else (None, None)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select * from tasks where (%(s)s::text is null or status = %(s)s) and (%(p)s::text is null or phase = %(p)s) "
                "and (%(q)s::text is null or title ilike %(like)s or description ilike %(like)s) "
                "and (%(ts)s::timestamptz is null or (created_at, id) < (%(ts)s::timestamptz, %(id)s::uuid)) "
                "and (%(o)s::uuid is null or owner_id = %(o)s::uuid) "
                "order by created_at desc, id desc limit %(l)s",
                {
                    "s": status,
                    "p": phase,
                    "q": q,
                    "like": f"%{like_escape(q)}%" if q else None,
                    "ts": after_ts,
                    "id": after_id,
                    "l": limit + 1,
                    "o": owner,
                },
            )
            rows = await cur.fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (f"{rows[-1]['created_at'].isoformat()}|{rows[-1]['id']}" if more else None)

    @retried
    async def count_by_status(self, *, owner: str | None = None) -> dict[str, int]:
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    "select status, count(*) from tasks where (%s::uuid is null or owner_id = %s::uuid) group by status",
                    (owner, owner),
                )
            ).fetchall()
        return {status: n for status, n in rows}

    @retried
    async def last_event_id(self) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("select coalesce(max(id), 0) from task_events")).fetchone()
        return row[0] if row else 0  # an aggregate always returns its one row

    @retried
    async def events_after(self, after: int, *, task_id: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select id, task_id, kind, payload from task_events where id > %s and (%s::uuid is null or task_id = %s::uuid) "
                "order by id limit %s",
                (after, task_id, task_id, limit),
            )
            return await cur.fetchall()

    @retried
    async def fetch_task(self, task_id: str) -> dict[str, Any] | None:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("select * from tasks where id = %s", (task_id,))
            return await cur.fetchone()

    @retried
    async def list_tasks(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select * from tasks where (%(s)s::text is null or status = %(s)s) order by created_at desc limit %(l)s",
                {"s": status, "l": limit},
            )
            return await cur.fetchall()

    @retried
    async def fetch_steps(self, task_id: str, after: int = -1) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("select * from task_steps where task_id = %s and seq > %s order by seq", (task_id, after))
            return await cur.fetchall()

    @retried
    async def fetch_artifacts(self, task_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("select * from artifacts where task_id = %s order by created_at, id", (task_id,))
            return await cur.fetchall()

    # ------------------------------------------------------------------ intake (morgus/app/intake.py)

    @retried
    async def pending_tasks(self, *, stale_s: float, limit: int = 50) -> list[dict[str, Any]]:
        """Rows waiting for their workflow: never claimed, or claimed longer than `stale_s` ago by a process that
        may have died before starting it (starting it again is refused by Temporal's workflow-id uniqueness)."""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select id, title, description, model, owner_id from tasks where status = 'pending' "
                "and (started_at is null or started_at < now() - make_interval(secs => %s)) "
                "order by created_at limit %s",
                (stale_s, limit),
            )
            return await cur.fetchall()

    @retried
    async def claim_task(self, task_id: str, title: str, *, stale_s: float) -> bool:
        """Compare-and-set: whether this process won the row. Under READ COMMITTED a second claimer waits for the
        first one's update, re-checks the condition on the new row and finds it claimed."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "update tasks set started_at = now(), updated_at = now(), "
                "title = case when title = '' then %s else title end "
                "where id = %s and status = 'pending' "
                "and (started_at is null or started_at < now() - make_interval(secs => %s))",
                (title, task_id, stale_s),
            )
            return cur.rowcount == 1

    @retried
    async def tasks_with_pending_inputs(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select i.task_id, min(i.id) as first from task_inputs i where i.status = 'pending' "
                "group by i.task_id order by first limit %s",
                (limit,),
            )
            return await cur.fetchall()

    def input_lock(self, task_id: str) -> Any:
        """`async with store.input_lock(task_id) as inputs:` one process delivers a task's inputs at a time (a
        session advisory lock; None when another holds it). `inputs.next()` is the oldest pending input with its
        task's status, `inputs.mark(...)` records its fate and commits at once."""
        return _InputLock(self, task_id)


class _InputLock:
    """The delivery side of `task_inputs`: in order per task, one deliverer per task, each fate committed alone."""

    def __init__(self, store: Store, task_id: str) -> None:
        self.store = store
        self.task_id = task_id
        self._cm: Any = None
        self.conn: psycopg.AsyncConnection | None = None

    async def __aenter__(self) -> _InputLock | None:
        self._cm = self.store.pool.connection()
        self.conn = await self._cm.__aenter__()
        await self.conn.set_autocommit(True)
        row = await (
            await self.conn.execute(
                "select pg_try_advisory_lock(hashtextextended('morgus_input:' || %s, 0))", (self.task_id,)
            )
        ).fetchone()
        if not (row and row[0]):
            await self._release(locked=False)
            return None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._release(locked=True)

    async def _release(self, *, locked: bool) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None and locked and not conn.closed:
                await conn.execute(
                    "select pg_advisory_unlock(hashtextextended('morgus_input:' || %s, 0))", (self.task_id,)
                )
            if conn is not None and not conn.closed:
                await conn.set_autocommit(False)  # the pool's connections are transactional
        finally:
            await self._cm.__aexit__(None, None, None)

    async def next(self) -> dict[str, Any] | None:
        assert self.conn is not None
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "select i.id, i.task_id, i.kind, i.payload, i.attempts, t.status as task_status from task_inputs i "
                "join tasks t on t.id = i.task_id where i.task_id = %s and i.status = 'pending' order by i.id limit 1",
                (self.task_id,),
            )
            return await cur.fetchone()

    async def attempt(self, input_id: int) -> None:
        """Recorded (committed) before the send: a deliverer that finds it set after a crash asks the workflow's
        history whether the send arrived instead of sending twice."""
        assert self.conn is not None
        await self.conn.execute("update task_inputs set attempts = attempts + 1 where id = %s", (input_id,))

    async def mark(self, input_id: int, status: str, *, reason: str | None = None, result: Any = None) -> None:
        assert self.conn is not None
        await self.conn.execute(
            "update task_inputs set status = %s, reason = %s, result = %s, delivered_at = now() "
            "where id = %s and status = 'pending'",
            (status, reason, Jsonb(result) if result is not None else None, input_id),
        )
