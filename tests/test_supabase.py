"""Supabase-native Morgus: owners and row-level security under Supabase's own roles (`anon`, `authenticated`, with
`request.jwt.claims` set as PostgREST sets it), a migration from the previous release with data in it, the table
intake (a pending row starts its task once, whatever number of intakes run; `task_inputs` delivered once, in order)
and the API scoped to a Supabase JWT's user. Real embedded Postgres, real Temporal, the scripted LLM."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors

from morgus.config import EMBEDDED_DB_NAME
from morgus.db.embedded import _DB_SETUP, EmbeddedPostgres
from morgus.db.migrate import MIGRATIONS_DIR, apply_migrations, set_public_read
from morgus.pgsecret import embedded_dsn

A = str(uuid.uuid4())
B = str(uuid.uuid4())
# What the previous release shipped (main before the Supabase-native work): applied by name, in order.
PREVIOUS_RELEASE = ("001_init.sql", "002_usage_and_condensation.sql", "003_events.sql")
# Every table of the Morgus schema, and what a signed-in user may do to it (beyond that: refused).
READABLE = ("tasks", "task_steps", "artifacts", "task_events", "task_inputs")
PRIVATE = ("task_messages", "task_condensations", "knowledge", "morgus_config", "schema_migrations")


def claims(sub: str | None, role: str = "authenticated", **extra: Any) -> str:
    return json.dumps({"sub": sub, "role": role, **extra} if sub else {"role": role, **extra})


@contextmanager
def as_user(pg: EmbeddedPostgres, role: str, raw_claims: str, dbname: str = EMBEDDED_DB_NAME) -> Iterator[Any]:
    """A connection acting as PostgREST does for one request: SET ROLE + request.jwt.claims, in one transaction
    that is rolled back at the end (nothing a test does as a user stays)."""
    with psycopg.connect(pg.admin_dsn(dbname)) as conn:
        conn.execute(f"set local role {role}")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (raw_claims,))
        yield conn
        conn.rollback()


def refused(conn: Any, statement: str, params: tuple = ()) -> str:
    """The statement fails (permission or policy) inside a savepoint; the transaction goes on."""
    try:
        with conn.transaction():
            conn.execute(statement, params)
    except (errors.InsufficientPrivilege, errors.CheckViolation) as e:
        return str(e)
    raise AssertionError(f"not refused: {statement}")


def rows(conn: Any, statement: str, params: tuple = ()) -> list[tuple]:
    with conn.transaction():
        return conn.execute(statement, params).fetchall()


def seed_task(conn: Any, owner: str | None, *, status: str = "completed") -> str:
    """A task with one row in every table that hangs off it, written as Morgus writes them."""
    tid = str(uuid.uuid4())
    conn.execute(
        "insert into tasks (id, workflow_id, title, description, status, owner_id) values (%s, %s, 't', 'd', %s, %s)",
        (tid, f"task-{tid}", status, owner),
    )
    conn.execute("insert into task_steps (id, task_id, seq, type) values (gen_random_uuid(), %s, 0, 'NOTE')", (tid,))
    conn.execute("insert into artifacts (id, task_id, type, name) values (gen_random_uuid(), %s, 'file', 'f')", (tid,))
    conn.execute("insert into task_messages (task_id, seq, message) values (%s, 0, '{}')", (tid,))
    conn.execute(
        "insert into task_condensations (task_id, upto_seq, summary, turns) values (%s, 1, 'secret', 1)", (tid,)
    )
    conn.execute("insert into task_inputs (task_id, kind, status) values (%s, 'say', 'delivered')", (tid,))
    return tid


@pytest.fixture
def two_users(postgres: EmbeddedPostgres) -> Iterator[dict[str, str]]:
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        tasks = {"A": seed_task(conn, A), "B": seed_task(conn, B)}
        yield tasks
        conn.execute("delete from tasks where id = any(%s::uuid[])", (list(tasks.values()),))


# ---------------------------------------------------------------- row-level security through SQL roles


def test_a_user_reads_and_writes_only_their_own_rows_in_every_table(postgres, two_users) -> None:
    mine, theirs = two_users["A"], two_users["B"]
    with as_user(postgres, "authenticated", claims(A)) as conn:
        for table in READABLE:
            key = "id" if table == "tasks" else "task_id"
            assert rows(conn, f"select 1 from {table} where {key} = %s", (theirs,)) == [], table
            assert rows(conn, f"select 1 from {table} where {key} = %s", (mine,)), table
            # every verb but reading (and inserting where a user may) is refused outright, on any row
            refused(conn, f"update {table} set {key} = {key} where {key} = %s", (theirs,))
            refused(conn, f"delete from {table} where {key} = %s", (theirs,))
            refused(conn, f"truncate {table} cascade")
        for table in PRIVATE:
            refused(conn, f"select * from {table}")
            refused(conn, f"delete from {table}")
            refused(conn, f"truncate {table} cascade")
        for table in ("task_steps", "artifacts", "task_events", "task_messages", "task_condensations"):
            refused(conn, f"insert into {table} (task_id) values (%s)", (mine,))
        # a task in someone else's name, one that claims to be running, one with no owner, a workflow id of choice
        assert "row-level security" in refused(conn, "insert into tasks (description, owner_id) values ('x', %s)", (B,))
        refused(conn, "insert into tasks (description, status) values ('x', 'running')")
        refused(conn, "insert into tasks (description, owner_id) values ('x', null)")
        refused(conn, "insert into tasks (description, workflow_id) values ('x', 'task-mine')")
        refused(conn, "insert into tasks (description, started_at) values ('x', now())")
        # input to someone else's task, or to nobody's, or one that says it was already delivered
        refused(conn, "insert into task_inputs (task_id, kind, payload) values (%s, 'cancel', '{}')", (theirs,))
        refused(conn, "insert into task_inputs (task_id, kind) values (gen_random_uuid(), 'cancel')")
        refused(conn, "insert into task_inputs (task_id, kind, status) values (%s, 'say', 'delivered')", (mine,))
        # what a user may do: start a task of their own and send it input
        with conn.transaction():
            tid, owner, status, wf = conn.execute(
                "insert into tasks (description) values ('mine') returning id, owner_id, status, workflow_id"
            ).fetchone()
            assert (str(owner), status, wf) == (A, "pending", f"task-{tid}")
            conn.execute("insert into task_inputs (task_id, kind, payload) values (%s, 'say', '{}')", (mine,))
        assert len(rows(conn, "select 1 from tasks")) >= 2 and not rows(
            conn, "select 1 from tasks where owner_id <> %s", (A,)
        )


def test_anon_reads_nothing_unless_the_operator_opts_in(postgres, two_users) -> None:
    with as_user(postgres, "anon", claims(None, "anon")) as conn:
        for table in READABLE[:-1]:
            assert rows(conn, f"select 1 from {table}") == [], table
        for table in ("task_inputs", *PRIVATE):
            refused(conn, f"select * from {table}")
        refused(conn, "insert into tasks (description) values ('x')")
        refused(conn, "insert into task_inputs (task_id, kind) values (%s, 'cancel')", (two_users["A"],))
    set_public_read(postgres.dsn, True)
    try:
        with as_user(postgres, "anon", claims(None, "anon")) as conn:
            for table in READABLE[:-1]:
                key = "id" if table == "tasks" else "task_id"
                assert (
                    len(
                        rows(
                            conn,
                            f"select distinct {key} from {table} where {key} = any(%s::uuid[])",
                            (list(two_users.values()),),
                        )
                    )
                    == 2
                )
            refused(conn, "select * from task_inputs")  # what an owner sent stays theirs
            refused(conn, "select * from task_messages")
            refused(conn, "update tasks set title = 'x'")
    finally:
        set_public_read(postgres.dsn, False)


def test_morgus_own_role_sees_every_row(postgres, two_users) -> None:
    with psycopg.connect(postgres.dsn) as conn:
        for table in ("tasks", "task_steps", "artifacts", "task_events", "task_inputs", "task_messages"):
            key = "id" if table == "tasks" else "task_id"
            n = conn.execute(f"select count(*) from {table} where {key} = any(%s::uuid[])", (list(two_users.values()),))
            assert n.fetchone()[0] >= 2, table


@pytest.mark.parametrize(
    "raw",
    [
        claims("not-a-uuid"),
        claims("'; drop table tasks; --"),
        json.dumps({"sub": {"nested": "x"}}),
        "not json at all",
        '{"sub": "' + A + "\"'",  # broken JSON that starts like A's claims
    ],
)
def test_hostile_claims_read_nothing(postgres, two_users, raw) -> None:
    with as_user(postgres, "authenticated", raw) as conn:
        for table in READABLE:
            with pytest.raises((errors.InvalidTextRepresentation, errors.InvalidParameterValue, psycopg.DataError)):
                rows(conn, f"select * from {table}")
    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("select count(*) from tasks where id = %s", (two_users["B"],)).fetchone()[0] == 1


def test_a_role_claim_grants_nothing(postgres, two_users) -> None:
    """The policies look at the user's id only: a token that says service_role in its claims is still that user."""
    with as_user(postgres, "authenticated", claims(A, "service_role")) as conn:
        assert rows(conn, "select 1 from tasks where id = %s", (two_users["B"],)) == []
    with as_user(postgres, "authenticated", claims(None)) as conn:  # signed in with no sub: nobody
        assert rows(conn, "select 1 from tasks where id = any(%s::uuid[])", (list(two_users.values()),)) == []
        refused(conn, "insert into tasks (description) values ('x')")


# ---------------------------------------------------------------- migrations


def test_a_database_from_the_previous_release_with_data_upgrades(postgres) -> None:
    assert [p.name for p in sorted(MIGRATIONS_DIR.glob("*.sql"))][:3] == list(PREVIOUS_RELEASE)
    db = f"morgus_prev_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.admin_dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"create database {db} owner morgus")
    try:
        with psycopg.connect(postgres.admin_dsn(db), autocommit=True) as admin:
            admin.execute("create extension if not exists vector")  # the previous release's superuser step
        dsn = embedded_dsn(postgres.secrets_dir, postgres.host, postgres.port, db)
        with psycopg.connect(dsn, autocommit=True) as conn:  # the previous release's migrations, as it ran them
            conn.execute(
                "create table schema_migrations (name text primary key, applied_at timestamptz not null default now())"
            )
            for name in PREVIOUS_RELEASE:
                conn.execute((MIGRATIONS_DIR / name).read_text())
                conn.execute("insert into schema_migrations (name) values (%s)", (name,))
            old = str(uuid.uuid4())
            conn.execute(
                "insert into tasks (id, workflow_id, title, description, status) values (%s, %s, 'old', 'd', 'completed')",
                (old, f"task-{old}"),
            )
            conn.execute(
                "insert into task_steps (id, task_id, seq, type) values (gen_random_uuid(), %s, 0, 'NOTE')", (old,)
            )
            conn.execute("insert into task_messages (task_id, seq, message) values (%s, 0, '{}')", (old,))
        with psycopg.connect(postgres.admin_dsn(db), autocommit=True) as admin:
            admin.execute(_DB_SETUP)  # what this release's `morgus up` does before migrating
        applied = apply_migrations(dsn)
        assert "010_owners_rls.sql" in applied and "011_intake_and_inputs.sql" in applied
        assert not set(PREVIOUS_RELEASE) & set(applied)
        assert apply_migrations(dsn) == []
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("select owner_id, status, title from tasks where id = %s", (old,)).fetchone()
            assert row == (None, "completed", "old")  # kept, and nobody's: only the operator sees it
            assert conn.execute("select count(*) from task_events where task_id = %s", (old,)).fetchone()[0] >= 2
            open_policies = "select policyname from pg_policies where qual = 'true' and roles && '{anon,authenticated}'"
            assert conn.execute(open_policies).fetchall() == []  # the previous release's `using (true)` are gone
        for role, raw in (("anon", claims(None, "anon")), ("authenticated", claims(A))):
            with as_user(postgres, role, raw, dbname=db) as conn:
                assert rows(conn, "select 1 from tasks") == [] and rows(conn, "select 1 from task_steps") == []
        with as_user(postgres, "authenticated", claims(A), dbname=db) as conn:
            with conn.transaction():
                conn.execute("insert into tasks (description) values ('after the upgrade')")
            assert len(rows(conn, "select 1 from tasks")) == 1
            assert len(rows(conn, "select 1 from task_events")) == 1  # the event trigger runs as the owner
    finally:
        with psycopg.connect(postgres.admin_dsn("postgres"), autocommit=True) as admin:
            admin.execute(f"drop database if exists {db} with (force)")


# ---------------------------------------------------------------- the intake (real Temporal, the scripted LLM)


def reset_input(dsn: str, input_id: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update task_inputs set status = 'pending', result = null where id = %s", (input_id,))


def insert_as(pg: EmbeddedPostgres, user: str, statement: str, params: tuple = ()) -> Any:
    """One committed insert as a signed-in user (what supabase-js does through PostgREST)."""
    with psycopg.connect(pg.admin_dsn(EMBEDDED_DB_NAME)) as conn:
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims(user),))
        row = conn.execute(statement + " returning id", params).fetchone()
        conn.commit()
    return row[0]


async def workflow_runs(client: Any, task_id: str) -> int:
    """Starts of workflow task-<id>: its runs, a continue-as-new counting with the run it continues."""
    from temporalio.client import WorkflowExecutionStatus

    runs = [w async for w in client.list_workflows(f'WorkflowId = "task-{task_id}"')]
    return len([w for w in runs if w.status != WorkflowExecutionStatus.CONTINUED_AS_NEW])


async def test_a_pending_row_starts_its_task_once_whatever_number_of_intakes_run(
    postgres, settings_with, client, store, llm, worker_for
) -> None:
    from morgus.app.intake import Intake
    from tests.conftest import wait_task_status
    from tests.helpers.api import served

    settings = settings_with(MORGUS_INTAKE="1", MORGUS_INTAKE_SWEEP_S="1")
    early = llm.add("supa-intake-early", [])
    late = llm.add("supa-intake-late", [])
    insert = "insert into tasks (description, model) values (%s, 'scripted')"
    # inserted while no intake runs: started by the start-up sweep
    before = str(insert_as(postgres, A, insert, (f"Test task {early}",)))
    bad = str(insert_as(postgres, A, "insert into tasks (description) values ('')"))
    controls = str(insert_as(postgres, A, "insert into tasks (title, description) values (%s, 'x')", ("\x1b[2J",)))
    async with (
        worker_for(settings),
        Intake(settings, store, client) as one,
        Intake(settings, store, client) as two,
        served(settings, client, store) as http,  # a third intake, in the API process
    ):
        # in a thread: the worker and the intakes share this event loop, and a blocking insert waiting on a lock one
        # of them holds (the events trigger serialises commits) would wait for ever
        after = str(await asyncio.to_thread(insert_as, postgres, A, insert, (f"Test task {late}",)))
        api = (await http.post("/api/tasks", json={"description": f"Test task {late}", "model": "scripted"})).json()
        for tid in (before, after, api["id"]):
            await wait_task_status(store, tid, "completed")
        await wait_task_status(store, bad, "error")
        await wait_task_status(store, controls, "error")
    # each row started once (checked below by its runs); which intake started it is a race (the worker's intake and
    # the API's run too), but these two never started the same row, nor the API's own
    # (the shared test database may hold other tests' pending rows, which these intakes start too)
    started = one.started + two.started
    assert len(started) == len(set(started)) and api["id"] not in started
    for tid in (before, after, api["id"]):
        assert await workflow_runs(client, tid) == 1
    assert api["id"] not in one.started + two.started  # the API started it; the intakes left it alone
    row = await store.fetch_task(bad)
    assert "description" in row["error_message"] and row["completed_at"] is not None
    assert "title: must not contain control characters" in (await store.fetch_task(controls))["error_message"]
    assert await workflow_runs(client, bad) == 0
    with as_user(postgres, "authenticated", claims(A)) as conn:  # the owner reads what Morgus wrote
        assert len(rows(conn, "select 1 from task_steps where task_id = %s", (before,))) >= 5
        assert rows(conn, "select status, title from tasks where id = %s", (after,)) == [
            ("completed", f"Test task {late}")
        ]
    with as_user(postgres, "authenticated", claims(B)) as conn:
        assert rows(conn, "select 1 from task_steps where task_id = any(%s::uuid[])", ([before, after],)) == []


async def test_task_inputs_are_delivered_once_in_order_and_refused_with_a_reason(
    postgres, settings_with, client, store, llm, worker_for
) -> None:
    from morgus.app.intake import Intake
    from tests.conftest import ask, wait_for, wait_task_status

    settings = settings_with(MORGUS_INTAKE="1", MORGUS_INTAKE_SWEEP_S="1")
    marker = llm.add("supa-inputs", [ask("Which colour?"), {"content": "noted", "delay_s": 2}], repeat_last=True)
    send = "insert into task_inputs (task_id, kind, payload) values (%s, %s, %s)"

    async def fate(input_id: int) -> Any:
        async def done() -> Any:
            with psycopg.connect(postgres.dsn) as conn:
                row = conn.execute("select status, reason, result from task_inputs where id = %s", (input_id,))
                found = row.fetchone()
            return found if found and found[0] != "pending" else None

        return await wait_for(done, 60, what=f"input {input_id} delivered or rejected")

    async def answers(tid: str) -> int:
        return len([s for s in await store.fetch_steps(tid) if s["type"] == "ANSWER" and "blue" in s["content"]])

    # an input for a task whose workflow has not started yet waits for it
    waiting = str(insert_as(postgres, A, "insert into tasks (description) values ('never started')"))
    early = insert_as(postgres, A, send, (waiting, "say", '{"text": "hello"}'))
    await Intake(settings, store, client).deliver_inputs()
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        assert conn.execute("select status from task_inputs where id = %s", (early,)).fetchone() == ("pending",)
        conn.execute("delete from tasks where id = %s", (waiting,))
    async with worker_for(settings), Intake(settings, store, client):
        tid = str(
            await asyncio.to_thread(
                insert_as,
                postgres,
                A,
                "insert into tasks (description, model) values (%s, 'scripted')",
                (f"x {marker}",),
            )
        )
        await wait_task_status(store, tid, "waiting_for_input")
        answer = await asyncio.to_thread(insert_as, postgres, A, send, (tid, "answer", '{"text": "blue"}'))
        assert await fate(answer) == ("delivered", None, "Which colour?")
        # a crash between delivering and marking: the same input is sent again, Temporal answers with the first outcome
        await asyncio.to_thread(reset_input, postgres.dsn, answer)
        await Intake(settings, store, client).run_once()
        assert await fate(answer) == ("delivered", None, "Which colour?") and await answers(tid) == 1
        sent = [
            await asyncio.to_thread(insert_as, postgres, A, send, (tid, kind, payload))
            for kind, payload in (
                ("answer", '{"text": "blue again"}'),
                ("bogus", "{}"),
                ("say", '{"text": ""}'),
                ("say", '["not", "an object"]'),
                ("pause", "{}"),
                ("say", '{"text": "use tailwind"}'),
                ("cancel", '{"reason": "enough"}'),
            )
        ]
        fates = [await fate(i) for i in sent]
        await wait_task_status(store, tid, "cancelled")
        late = [
            await asyncio.to_thread(insert_as, postgres, A, send, (tid, kind, '{"text": "x"}'))
            for kind in ("cancel", "say")
        ]
        late_fates = [await fate(i) for i in late]
    assert fates[0][:2] == ("rejected", f"task {tid} is not waiting for an answer")
    assert fates[1][0] == "rejected" and "unknown kind 'bogus'" in fates[1][1]
    assert fates[2][0] == "rejected" and fates[2][1].startswith("payload: text:")
    assert fates[3] == ("rejected", "payload: must be a JSON object", None)
    assert fates[4][:2] == ("delivered", None)  # the `pause` update (issue 14)
    assert fates[5][:2] == ("delivered", None) and fates[5][2]["answered"] is False  # queued for the next turn
    assert fates[6] == ("delivered", None, None)
    assert [f[:2] for f in late_fates] == [("rejected", "the task has ended (cancelled)")] * 2
    assert await answers(tid) == 1
    with psycopg.connect(postgres.dsn) as conn:  # delivered in the order they were sent
        order = conn.execute(
            "select id from task_inputs where task_id = %s and status = 'delivered' order by delivered_at, id", (tid,)
        ).fetchall()
    assert [r[0] for r in order] == sorted(r[0] for r in order)


# ---------------------------------------------------------------- the API with Supabase users


def mint(sub: Any, secret: str, **overrides: Any) -> str:
    import jwt

    payload = {"sub": sub, "aud": "authenticated", "role": "authenticated", "exp": int(time.time()) + 600, **overrides}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


async def test_the_api_scopes_every_route_to_the_jwt_user(postgres, two_users, settings_with, client, store) -> None:
    import base64

    from tests.helpers.api import is_error, served

    secret = "s3cret-" * 6
    settings = settings_with(MORGUS_API_TOKEN="operator-token", MORGUS_SUPABASE_JWT_SECRET=secret)
    mine, theirs = two_users["A"], two_users["B"]
    user = {"Authorization": f"Bearer {mint(A, secret)}"}
    none_alg = (
        base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
        + "."
        + base64.urlsafe_b64encode(json.dumps({"sub": A, "aud": "authenticated", "exp": 2**40}).encode())
        .rstrip(b"=")
        .decode()
        + "."
    )
    hostile = {
        "alg none": none_alg,
        "wrong secret": mint(A, "x" * 40),
        "expired": mint(A, secret, exp=int(time.time()) - 10),
        "sub not a uuid": mint("1; drop table tasks", secret),
        "sub missing": mint(None, secret),
        "anon key": mint(None, secret, aud=None, role="anon"),
        "no audience": mint(A, secret, aud=None),
        "garbage": "not.a.jwt",
    }
    async with served(settings, client, store) as http:
        for name, token in hostile.items():
            is_error(await http.get("/api/tasks", headers={"Authorization": f"Bearer {token}"}), 401), name
        assert (await http.get(f"/api/tasks/{mine}", headers=user)).status_code == 200
        for path in ("", "/steps", "/artifacts", "/files", "/archive", "/live", "/git/log"):
            is_error(await http.get(f"/api/tasks/{theirs}{path}", headers=user), 404)
        is_error(await http.get(f"/api/tasks/{theirs}/files/content", headers=user, params={"path": "x"}), 404)
        decision = {"call_id": "c", "decision": "deny", "reason": "x"}
        for path, body in (
            ("/answer", {"text": "x"}),
            ("/messages", {"text": "x"}),
            ("/pause", {}),
            ("/resume", {}),
            ("/approvals", decision),
            ("/cancel", {}),
        ):
            is_error(await http.post(f"/api/tasks/{theirs}{path}", headers=user, json=body), 404)
        # memory: another owner's note is a 404, and the list shows only the caller's own
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            note = conn.execute(
                "insert into knowledge (owner_id, task_id, kind, phase, content, note_hash) "
                "values (%s, %s, 'preference', 'FINALIZE', 'B likes green', 'k') returning id",
                (B, theirs),
            ).fetchone()[0]
        is_error(await http.get(f"/api/memory/{note}", headers=user), 404)
        json_type = {**user, "Content-Type": "application/json"}  # every change is a JSON request (api_guard.py)
        is_error(await http.request("DELETE", f"/api/memory/{note}", headers=json_type), 404)
        listed_notes = (await http.get("/api/memory", headers=user, params={"owner": B})).json()["notes"]
        assert str(note) not in [n["id"] for n in listed_notes]
        is_error(await http.get("/api/events", headers=user, params={"task_id": theirs}), 404)
        is_error(await http.get("/api/events", headers=user), 422)
        listed = (await http.get("/api/tasks", headers=user, params={"limit": 200})).json()
        assert mine in [t["id"] for t in listed["tasks"]] and theirs not in [t["id"] for t in listed["tasks"]]
        created = (await http.post("/api/tasks", headers=user, json={"description": "from the API"})).json()
        operator = {"Authorization": "Bearer operator-token"}
        assert (await http.get(f"/api/tasks/{theirs}", headers=operator)).status_code == 200
        operator_list = (await http.get("/api/tasks", headers=operator, params={"limit": 200})).json()
        assert {mine, theirs} <= {t["id"] for t in operator_list["tasks"]}
    row = await store.fetch_task(created["id"])
    assert str(row["owner_id"]) == A and row["started_at"] is not None
    with as_user(postgres, "authenticated", claims(A)) as conn:  # the same row through Supabase
        assert rows(conn, "select 1 from tasks where id = %s", (created["id"],))
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute("update tasks set status = 'cancelled' where id = %s", (created["id"],))


def test_only_a_row_nobody_claimed_wakes_the_intakes(postgres) -> None:
    """An API insert (claimed in the insert, started by the API) wakes no intake; a client's pending row does.
    Told apart without waiting on a clock: notifications arrive in commit order, so each task_inputs row's, committed
    right after a tasks row, follows whatever that tasks row caused."""
    claimed, unclaimed = str(uuid.uuid4()), str(uuid.uuid4())
    with (
        psycopg.connect(postgres.dsn, autocommit=True) as listener,
        psycopg.connect(postgres.dsn, autocommit=True) as conn,
    ):
        listener.execute("listen morgus_intake")
        try:
            for tid, started in ((claimed, "now()"), (unclaimed, "null")):
                conn.execute(
                    "insert into tasks (id, workflow_id, title, description, status, started_at) "
                    f"values (%s, %s, 't', 'd', 'pending', {started})",
                    (tid, f"task-{tid}"),
                )
                conn.execute("insert into task_inputs (task_id, kind, status) values (%s, 'say', 'delivered')", (tid,))
            heard = [n.payload for n in listener.notifies(timeout=30, stop_after=3)]
        finally:
            conn.execute("delete from tasks where id = any(%s::uuid[])", ([claimed, unclaimed],))
    assert heard == ["task_inputs", "tasks", "task_inputs"], heard
