"""How fast a `tasks` row starts its task (issue 16: "within 100 ms"), against a task started through the API.

A row is inserted the way supabase-js does it through PostgREST (role `authenticated`, `request.jwt.claims` set, one
transaction), with the intake running in a real worker process (NOTIFY trigger + LISTEN; the sweep every
MORGUS_INTAKE_SWEEP_S is only the fallback). Then the same number of tasks through POST /api/tasks (the API served
in this process, its own intake off). Real Temporal dev server, real embedded Postgres, zero-latency scripted LLM.

    python bench/intake_latency.py --small    # 5 rows + 5 API tasks (CI-sized)
    python bench/intake_latency.py            # 50 + 50
    python bench/intake_latency.py --write    # also replace the results section of docs/benchmarks.md

Times are wall clock on one machine: the commit of the insert (or the POST being sent) as read here, the claim
(`tasks.started_at`, Postgres), the workflow's start (Temporal's start time) and the first `task_steps` row
(Postgres). Rows go one at a time, each task finished before the next, so each number is one unloaded pickup.

Every wait has a timeout, so the script cannot hang: a previous attempt waited without one for a task that never
finished (the worker ran with MORGUS_REQUIRE_WORK on, so a task that only says "done" is never complete), and it
inherited MORGUS_INTAKE from the caller's environment (0 in the test suite: then no row ever starts).
"""

from __future__ import annotations

import asyncio
import json
import platform
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import psycopg
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import Bench, pct, run_main, script, write_section  # noqa: E402
from morgus.app.api import create_app  # noqa: E402
from morgus.config import EMBEDDED_DB_NAME  # noqa: E402
from morgus.contracts import TaskResult  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- bench:intake:begin -->", "<!-- bench:intake:end -->"
START_TIMEOUT_S = 120  # the stack: dev server, Postgres, worker, a warm-up task
PICKUP_TIMEOUT_S = 30  # one row until its first step: far beyond a sweep (5 s) if no notification arrives
FINISH_TIMEOUT_S = 60  # one two-reply task to its end
T = TypeVar("T")

# The worker under test: the intake on whatever the caller's environment says, and tasks that may finish without
# changing a file (the scripted task only notifies the user).
WORKER_ENV = {"MORGUS_INTAKE": "1", "MORGUS_REQUIRE_WORK": "0", "MORGUS_SANDBOX_POOL_SIZE": "0"}


async def poll(what: str, check: Callable[[], Awaitable[T | None]], timeout_s: float, every_s: float = 0.005) -> T:
    """`check()` until it returns something, or a TimeoutError naming `what`. The interval does not bias a result:
    the times measured are the ones the server and the database recorded, not when this loop saw them."""
    deadline = time.monotonic() + timeout_s
    while (found := await check()) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: nothing within {timeout_s:.0f} s")
        await asyncio.sleep(every_s)
    return found


class Run:
    def __init__(self, b: Bench, api: httpx.AsyncClient) -> None:
        self.b = b
        self.api = api
        self.user = str(uuid.uuid4())  # the signed-in Supabase user who owns the rows

    def scenario(self) -> str:
        name = f"intake-{time.monotonic_ns()}"
        return self.b.llm.add(name, script(1))

    async def insert_row(self, description: str) -> tuple[str, float]:
        """One row as PostgREST inserts it for a signed-in user; the time just before its commit (when it becomes
        visible and the trigger's NOTIFY is sent)."""
        async with await psycopg.AsyncConnection.connect(
            self.b.pg.admin_dsn(EMBEDDED_DB_NAME), connect_timeout=10
        ) as c:
            await c.execute("set local role authenticated")
            await c.execute(
                "select set_config('request.jwt.claims', %s, true)",
                (json.dumps({"sub": self.user, "role": "authenticated"}),),
            )
            cur = await c.execute(
                "insert into tasks (description, model) values (%s, 'bench') returning id", (description,)
            )
            row = await cur.fetchone()
            assert row is not None
            t0 = time.time()
            await c.commit()
        return str(row[0]), t0

    async def post_task(self, description: str) -> tuple[str, float]:
        t0 = time.time()
        r = await self.api.post("/api/tasks", json={"description": description, "model": "bench"})
        r.raise_for_status()
        return r.json()["id"], t0

    async def one(self, via: str) -> dict[str, float]:
        insert = self.insert_row if via == "row" else self.post_task
        task_id, t0 = await asyncio.wait_for(insert(f"bench {self.scenario()}"), PICKUP_TIMEOUT_S)
        handle = self.b.client.get_workflow_handle(f"task-{task_id}", result_type=TaskResult)

        async def described() -> Any:
            try:
                return await handle.describe()
            except Exception:  # noqa: BLE001 - not started yet
                return None

        desc = await poll(f"task {task_id} ({via}): workflow started", described, PICKUP_TIMEOUT_S)
        first = await poll(f"task {task_id} ({via}): first task_steps row", lambda: self.first_step(task_id), 30)
        try:
            result = await asyncio.wait_for(handle.result(), FINISH_TIMEOUT_S)
        except TimeoutError:
            row = await self.b.store.fetch_task(task_id)
            raise RuntimeError(
                f"task {task_id} ({via}) did not finish within {FINISH_TIMEOUT_S} s; it is {row and row['status']}"
            ) from None
        if result.status != "completed":
            raise RuntimeError(f"task {task_id} ({via}) ended {result.status}")
        claimed = await self.b.store.fetch_task(task_id)
        return {
            "claimed": claimed["started_at"].timestamp() - t0 if claimed and claimed["started_at"] else float("nan"),
            "started": desc.start_time.timestamp() - t0,
            "first_step": first - t0,
        }

    async def first_step(self, task_id: str) -> float | None:
        async with self.b.store.pool.connection() as conn:
            cur = await conn.execute(
                "select extract(epoch from min(created_at)) from task_steps where task_id = %s", (task_id,)
            )
            row = await cur.fetchone()
        return float(row[0]) if row and row[0] is not None else None


def ms(xs: list[float]) -> str:
    return f"{pct(xs, 50) * 1000:.0f} / {pct(xs, 95) * 1000:.0f} / {max(xs) * 1000:.0f} ms"


async def measure(n: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="morgus-intake-") as tmp:
        b = Bench(Path(tmp), worker_env=WORKER_ENV)
        try:
            await asyncio.wait_for(b.__aenter__(), START_TIMEOUT_S)
        except BaseException:
            await stop_partial(b)
            raise
        try:
            token = secrets.token_urlsafe(24)
            settings = b.settings.model_copy(update={"intake": False, "api_token": token, "require_work": False})
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(
                    create_app(settings, client=b.client, store=b.store),
                    host="127.0.0.1",
                    port=port,
                    log_level="warning",
                )
            )
            serving = asyncio.create_task(server.serve())
            try:

                async def up() -> bool | None:
                    return True if server.started else None

                await poll("the API", up, 30, 0.05)
                headers = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as api:
                    run = Run(b, api)
                    await run.one("row")  # warm-up of both paths (first connection, first query plans)
                    await run.one("api")
                    rows = [await run.one("row") for _ in range(n)]
                    apis = [await run.one("api") for _ in range(n)]
            finally:
                server.should_exit = True
                await asyncio.wait_for(serving, 30)
        finally:
            await asyncio.wait_for(b.__aexit__(None, None, None), 60)
    col = lambda runs, k: [r[k] for r in runs]  # noqa: E731
    return [
        f"{n} rows and {n} API tasks, one at a time; p50 / p95 / max:",
        "",
        "| started by | → claimed (`tasks.started_at`) | → workflow started (Temporal) | → first `task_steps` row |",
        "|---|---|---|---|",
        f"| `tasks` row (Supabase insert, intake in the worker) | {ms(col(rows, 'claimed'))} "
        f"| **{ms(col(rows, 'started'))}** | {ms(col(rows, 'first_step'))} |",
        f"| POST /api/tasks (the API starts it) | {ms(col(apis, 'claimed'))} | **{ms(col(apis, 'started'))}** "
        f"| {ms(col(apis, 'first_step'))} |",
    ]


async def stop_partial(b: Bench) -> None:
    """What __aenter__ had started when it failed (its __aexit__ expects all of it)."""
    from contextlib import suppress

    from morgus.app.stack import terminate

    with suppress(Exception):
        terminate(b.worker)
    with suppress(Exception):
        b.temporal.stop()
    with suppress(Exception):
        b.pg.stop("immediate")
    with suppress(Exception):
        b.llm.stop()


def machine(small: bool) -> str:
    import temporalio

    return (
        f"{platform.node()}: {psutil.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, load {psutil.getloadavg()[0]:.1f} at the start; "
        f"Python {platform.python_version()}, temporalio {getattr(temporalio, '__version__', '')}, "
        f"Postgres 18 (embedded); {datetime.now().date()}; mode {'small' if small else 'full'}"
    )


async def main(small: bool, write: bool) -> int:
    header = f"Machine: {machine(small)}"
    t0 = time.monotonic()
    lines = await measure(5 if small else 50)
    report = "\n".join([header, "", *lines, "", f"(whole run {time.monotonic() - t0:.0f} s)"])
    print(report)
    if write:
        write_section(MARK_BEGIN, MARK_END, report)
    return 0


if __name__ == "__main__":
    run_main(main)
