"""How fast Morgus orchestrates: a real dev server, real Postgres, a real worker process, and a zero-latency
scripted LLM, so what is measured is Morgus and Temporal, not a model.

    python bench/orchestration.py            # full: 50 tasks pickup, 10/100/500-step tasks, 1/10/50 concurrent
    python bench/orchestration.py --small    # CI: 10 tasks, 10-step tasks, 1/5 concurrent (so it cannot rot)
    python bench/orchestration.py --write    # also replace the results section of docs/benchmarks.md

An agent step is one LLM activity, one tool activity (`notify_user`) and their projection rows. Pickup stage by
stage, against another git ref in the same run: bench/pickup.py.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.worker import Worker  # noqa: E402

from bench.floor_workflow import FLOOR_QUEUE, FloorWorkflow, floor_noop  # noqa: E402
from morgus.app.client import connect_temporal  # noqa: E402
from morgus.app.stack import DEV_SERVER_DYNAMIC_CONFIG, TemporalDevServer, start_worker_process, terminate  # noqa: E402
from morgus.app.tasks import start_task  # noqa: E402
from morgus.config import Settings  # noqa: E402
from morgus.contracts import TaskInput, TaskLimits  # noqa: E402
from morgus.db.embedded import EmbeddedPostgres  # noqa: E402
from morgus.db.migrate import apply_migrations  # noqa: E402
from morgus.db.store import Store  # noqa: E402
from morgus.scripted_llm import ScriptedLLM  # noqa: E402
from tests.conftest import free_port  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- bench:orchestration:begin -->", "<!-- bench:orchestration:end -->"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


def script(steps: int) -> list[dict]:
    return [
        {"content": f"step {i}", "tool_calls": [{"name": "notify_user", "arguments": {"message": f"step {i}"}}]}
        for i in range(steps)
    ] + [{"content": "done"}]


class Bench:
    def __init__(
        self, root: Path, dynamic_config: dict[str, int] | None = None, worker_env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.worker_env = worker_env or {}  # more of the worker's environment (bench/intake_latency.py)
        root.mkdir(parents=True, exist_ok=True)
        self.llm = ScriptedLLM()
        self.temporal = TemporalDevServer(
            port=free_port(),
            ui_port=None,
            log_file=root / "temporal.log",
            dynamic_config=DEV_SERVER_DYNAMIC_CONFIG if dynamic_config is None else dynamic_config,
        )
        self.pg = EmbeddedPostgres(root / "pg", free_port())
        self.worker = None

    async def __aenter__(self) -> Bench:
        url = self.llm.start()
        self.temporal.start()
        self.pg.start()
        apply_migrations(self.pg.dsn)
        self.settings = Settings(
            TEMPORAL_ADDRESS=self.temporal.address,
            DATABASE_URL=self.pg.dsn,
            OPENAI_BASE_URL=url,  # type: ignore[call-arg]
            OPENAI_API_KEY="bench",
            MORGUS_HOME=str(self.root / "home"),
            MORGUS_TASK_QUEUE="bench",
            MORGUS_WORKSPACES=str(self.root / "ws"),
        )
        # the worker subprocess: this environment plus the bench's stack; it reads it through its own Settings
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.temporal.address,
            "DATABASE_URL": self.pg.dsn,
            "OPENAI_BASE_URL": url,
            "OPENAI_API_KEY": "bench",
            "MORGUS_HOME": str(self.root / "home"),
            "MORGUS_TASK_QUEUE": "bench",
            "MORGUS_WORKSPACES": str(self.root / "ws"),
            "MORGUS_LOG_LEVEL": "warning",
            "MORGUS_SANDBOX": "bwrap",
            **self.worker_env,
        }
        self.worker = start_worker_process(env, self.root / "worker.log")
        self.client = await connect_temporal(self.settings)
        self.store = Store(self.pg.dsn, max_size=10)
        await self.store.open()
        self.floor_worker = Worker(
            self.client, task_queue=FLOOR_QUEUE, workflows=[FloorWorkflow], activities=[floor_noop]
        )
        self.floor_run = asyncio.ensure_future(self.floor_worker.run())
        await self.run_task(1)  # warm-up: worker up, caches hot
        await self.floor(2)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.floor_worker.shutdown()
        await self.store.close()
        terminate(self.worker)
        self.temporal.stop()
        self.pg.stop("immediate")
        self.llm.stop()

    async def start(self, steps: int):
        name = f"b{steps}-{time.monotonic_ns()}"
        marker = self.llm.add(name, script(steps))
        task = TaskInput(
            title=name,
            description=f"bench {marker}",
            model="bench",
            limits=TaskLimits(max_iterations_per_phase=steps + 5, loop_repeats=100, require_work=False),
        )
        return await start_task(self.client, task, task_queue="bench")

    async def run_task(self, steps: int):
        handle = await self.start(steps)
        result = await handle.result()
        return handle, result

    async def pickup(self, n: int) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            handle = await self.start(1)
            task_id = handle.id.removeprefix("task-")
            while not await self.store.fetch_steps(task_id):
                await asyncio.sleep(0.002)
            out.append(time.perf_counter() - t0)
            await handle.result()
        return out

    async def floor(self, steps: int) -> list[float]:
        """Gaps between consecutive steps of the floor workflow (two plain activities per step)."""
        starts = await self.client.execute_workflow(
            FloorWorkflow.run, steps, id=f"floor-{time.monotonic_ns()}", task_queue=FLOOR_QUEUE
        )
        return [b - a for a, b in pairwise(starts)]

    async def per_step(self, steps: int) -> tuple[list[float], float, int]:
        handle, result = await self.run_task(steps)
        assert result.status == "completed", result
        rows = await self.store.fetch_steps(handle.id.removeprefix("task-"))
        times = [r["created_at"] for r in rows if r["type"] == "LLM_RESPONSE" and r["phase"] == "RESEARCH"]
        gaps = [(b - a).total_seconds() for a, b in pairwise(times)]
        runs = [wf async for wf in self.client.list_workflows(f"WorkflowId = '{handle.id}'")]
        size = 0
        for wf in runs:
            h = await self.client.get_workflow_handle(handle.id, run_id=wf.run_id).fetch_history()
            size += sum(e.ByteSize() for e in h.events)
        return gaps, size / max(1, len(rows)), len(runs)

    async def throughput(self, concurrent: int, steps: int) -> tuple[float, float, int, float]:
        proc = psutil.Process(self.worker.pid)
        peak = proc.memory_info().rss
        t0 = time.perf_counter()
        handles = [await self.start(steps) for _ in range(concurrent)]
        pending = [asyncio.ensure_future(h.result()) for h in handles]
        while not all(p.done() for p in pending):
            peak = max(peak, proc.memory_info().rss)
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - t0
        errors = sum(1 for p in pending if p.exception() is not None or p.result().status != "completed")
        return wall, concurrent * steps / wall, errors, peak / 2**20


def per_step_rows(label: str, rows: list[tuple[int, list[float], list[float], float, int]]) -> list[str]:
    out = []
    for n, floor, gaps, per_step_bytes, runs in rows:
        f50, m50 = pct(floor, 50), pct(gaps, 50)
        out.append(
            f"| {label} | {n} | {f50 * 1000:.0f} ms | {m50 * 1000:.0f} ms | {pct(gaps, 95) * 1000:.0f} ms "
            f"| **{m50 / f50:.2f}** | {per_step_bytes:.0f} B | {runs} |"
        )
    return out


async def measure(b: Bench, sizes: list[int]) -> list[tuple[int, list[float], list[float], float, int]]:
    rows = []
    for n in sizes:
        floor = await b.floor(n)
        gaps, per_step_bytes, runs = await b.per_step(n)
        rows.append((n, floor, gaps, per_step_bytes, runs))
    return rows


async def main(small: bool, write: bool) -> int:
    sizes = [10] if small else [10, 100, 500]
    levels = [1, 5] if small else [1, 10, 50]
    pickups = 10 if small else 50
    tuned = ", ".join(f"`{k}={v}`" for k, v in DEV_SERVER_DYNAMIC_CONFIG.items())
    lines: list[str] = []
    errors = 0
    with tempfile.TemporaryDirectory(prefix="morgus-bench-") as tmp:
        stock_rows: list = []
        stock_rate: list[str] = []
        if not small:
            # the same measurements on a dev server with its stock settings, in the same run, as the baseline
            async with Bench(Path(tmp) / "stock", dynamic_config={}) as b:
                stock_rows = await measure(b, [10, 100])
                wall, rate, err, rss = await b.throughput(50, 20)
                errors += err
                stock_rate.append(f"| stock | 50 | {wall:.1f} s | {rate:.1f} | {err} | {rss:.0f} MiB |")
        async with Bench(Path(tmp) / "tuned") as b:
            p = await b.pickup(pickups)
            rows = await measure(b, sizes)
            lines += [
                f"Dev server settings: stock, and tuned ({tuned}; what Morgus starts).",
                "",
                f"Pickup latency (`start_workflow` → first `task_steps` row), tuned, {pickups} tasks: "
                f"p50 **{pct(p, 50) * 1000:.0f} ms**, p95 **{pct(p, 95) * 1000:.0f} ms**.",
                "",
                "Per-step overhead: Morgus's agent step (LLM activity + tool activity + projection) against the floor, "
                "a plain workflow running two no-op activities per step on the same server.",
                "",
                "| server | task steps | floor p50 | Morgus per-step p50 | p95 | ratio to floor | history bytes per step "
                "| runs (continue-as-new) |",
                "|---|---|---|---|---|---|---|---|",
                *per_step_rows("stock", stock_rows),
                *per_step_rows("tuned", rows),
                "",
                "| server | concurrent tasks × 20 steps | wall time | agent steps/s | errors | worker peak RSS |",
                "|---|---|---|---|---|---|",
                *stock_rate,
            ]
            for c in levels:
                wall, rate, err, rss = await b.throughput(c, 20)
                errors += err
                lines.append(f"| tuned | {c} | {wall:.1f} s | {rate:.1f} | {err} | {rss:.0f} MiB |")
    import temporalio

    machine = (
        f"{platform.node()}: {psutil.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB; Python {platform.python_version()}, temporalio "
        f"{temporalio.__version__ if hasattr(temporalio, '__version__') else ''}, Postgres 18 (embedded); "
        f"{datetime.now().date()}; mode {'small' if small else 'full'}"
    )
    report = "\n".join([f"Machine: {machine}", "", *lines])
    print(report)
    if write:
        write_section(MARK_BEGIN, MARK_END, report)
    return 1 if errors else 0


def write_section(begin: str, end: str, report: str) -> None:
    """Replace what stands between two markers of docs/benchmarks.md (a bench's results section)."""
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    start, stop = text.index(begin) + len(begin), text.index(end)
    doc.write_text(text[:start] + "\n" + report + "\n" + text[stop:])


def run_main(main: Callable[[bool, bool], Awaitable[int]]) -> None:
    """`--small` / `--write`, then exit with main's code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--write", action="store_true")
    a = parser.parse_args()
    code = asyncio.run(main(a.small, a.write))
    sys.stdout.flush()
    os._exit(code)  # temporalio/sdk-python#300


if __name__ == "__main__":
    run_main(main)
