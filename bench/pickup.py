"""Where pickup time goes: task start → first `task_steps` row, stage by stage, for several variants side by side.

    python bench/pickup.py                      # 8 rounds × every variant, interleaved
    python bench/pickup.py --rounds 20 --baseline main

Each round starts one 1-step task per variant, one after the other (so load from other work hits every variant
alike), and waits for it to end before the next. Variants:
- `base`: a worker process running the code of `--baseline` (a git ref, exported with `git archive`), started from
  this process with `start_workflow`, as the API and the CLI do.
- `now`: a worker process running this tree's code, started the same way.
- `eager`: this tree's code in a worker inside this process, started with `request_eager_start=True`: the dev server
  hands the first workflow task back in the start call's reply (what the intake, which runs in the worker process,
  does). Only a starter that is itself a worker for the queue can do this.
- `api`: as `now`, plus the API's `insert_pending` before the start (the POST /api/tasks handler's work).

Stages come from the clocks of one machine: this process's (start called, start returned, row seen), the server's
history event times, and Postgres's `created_at` of the step (the projection transaction's start).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from temporalio.api.enums.v1 import EventType  # noqa: E402

from bench.orchestration import pct, script  # noqa: E402
from morgus.app.client import connect_temporal  # noqa: E402
from morgus.app.stack import DEV_SERVER_DYNAMIC_CONFIG, TemporalDevServer, terminate  # noqa: E402
from morgus.config import Settings  # noqa: E402
from morgus.contracts import TaskInput, TaskLimits, TaskResult  # noqa: E402
from morgus.db.embedded import EmbeddedPostgres  # noqa: E402
from morgus.db.migrate import apply_migrations  # noqa: E402
from morgus.db.store import Store  # noqa: E402
from morgus.ids import new_task_id, workflow_id_for  # noqa: E402
from morgus.log import configure_logging  # noqa: E402
from morgus.scripted_llm import ScriptedLLM  # noqa: E402
from tests.conftest import free_port  # noqa: E402

STAGES = [
    ("API handler's insert_pending", "t_call", "t_inserted"),
    ("start RPC", "t_start", "t_return"),
    ("start → WFT scheduled (server)", "t_start", "wft_scheduled"),
    ("WFT scheduled → WFT started (dispatch)", "wft_scheduled", "wft_started"),
    ("WFT started → step write begins", "wft_started", "row_created"),
    ("· WFT started → WFT completed (first workflow task)", "wft_started", "wft_completed"),
    ("· WFT completed → projection activity started", "wft_completed", "act_started"),
    ("· projection activity started → step write begins", "act_started", "row_created"),
    ("step write begins → row seen", "row_created", "t_seen"),
    ("total: start → row seen", "t_call", "t_seen"),
]


@dataclass
class Sample:
    variant: str
    t_call: float
    t_return: float = 0.0
    t_seen: float = 0.0
    times: dict[str, float] = field(default_factory=dict)


def export_ref(ref: str, dest: Path) -> Path:
    """The tree of `ref`, as files (no .git), to run a worker of that code."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


class PickupBench:
    def __init__(self, root: Path, baseline: str | None, eager: bool) -> None:
        self.root = root
        self.baseline = baseline
        self.eager = eager
        self.llm = ScriptedLLM()
        self.temporal = TemporalDevServer(
            port=free_port(), ui_port=None, log_file=root / "temporal.log", dynamic_config=DEV_SERVER_DYNAMIC_CONFIG
        )
        self.pg = EmbeddedPostgres(root / "pg", free_port())
        self.procs: list[subprocess.Popen] = []
        self.in_process = None

    def env(self, queue: str) -> dict[str, str]:
        return {
            **os.environ,
            "TEMPORAL_ADDRESS": self.temporal.address,
            "DATABASE_URL": self.pg.dsn,
            "OPENAI_BASE_URL": self.url,
            "OPENAI_API_KEY": "bench",
            "MORGUS_HOME": str(self.root / "home"),
            "MORGUS_TASK_QUEUE": queue,
            "MORGUS_WORKSPACES": str(self.root / "ws"),
            "MORGUS_LOG_LEVEL": "warning",
            "MORGUS_SANDBOX": "bwrap",
            "MORGUS_INTAKE": "0",
        }

    async def __aenter__(self) -> PickupBench:
        self.url = self.llm.start()
        self.temporal.start()
        self.pg.start()
        apply_migrations(self.pg.dsn)
        self.queues: dict[str, str] = {"now": "pickup-now", "api": "pickup-now"}
        if self.baseline:
            code = export_ref(self.baseline, self.root / "baseline")
            env = {**self.env("pickup-base"), "PYTHONPATH": str(code)}
            self.procs.append(self._worker(env, code, "base"))
            self.queues["base"] = "pickup-base"
        self.procs.append(self._worker(self.env("pickup-now"), ROOT, "now"))
        self.settings = Settings(
            TEMPORAL_ADDRESS=self.temporal.address,
            DATABASE_URL=self.pg.dsn,
            OPENAI_BASE_URL=self.url,  # type: ignore[call-arg]
            OPENAI_API_KEY="bench",
            MORGUS_HOME=str(self.root / "home"),
            MORGUS_TASK_QUEUE="pickup-eager",
            MORGUS_WORKSPACES=str(self.root / "ws-eager"),
            MORGUS_SANDBOX="bwrap",
            MORGUS_INTAKE=False,
        )
        self.client = await connect_temporal(self.settings)
        self.store = Store(self.pg.dsn, max_size=10)
        await self.store.open()
        if self.eager:
            from morgus.worker import running_workers

            self.queues["eager"] = "pickup-eager"
            self.worker_store = Store(self.pg.dsn, max_size=10)
            await self.worker_store.open()
            self.in_process = running_workers(self.client, self.worker_store, self.settings)
            await self.in_process.__aenter__()
        for v in self.queues:  # warm-up: workers polling, caches hot
            for _ in range(2):
                await self.one(v)
        return self

    def _worker(self, env: dict[str, str], cwd: Path, name: str) -> subprocess.Popen:
        # the worker module of that tree (cwd first on sys.path for `-m`)
        with open(self.root / f"worker-{name}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "morgus.worker"],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def __aexit__(self, *exc: object) -> None:
        if self.in_process is not None:
            await self.in_process.__aexit__(None, None, None)
            await self.worker_store.close()
        await self.store.close()
        for p in self.procs:
            terminate(p)
        self.temporal.stop()
        self.pg.stop("immediate")
        self.llm.stop()

    async def one(self, variant: str) -> Sample:
        name = f"p-{variant}-{time.monotonic_ns()}"
        marker = self.llm.add(name, script(1))
        task = TaskInput(
            title=name,
            description=f"bench {marker}",
            model="bench",
            limits=TaskLimits(max_iterations_per_phase=6, loop_repeats=100, require_work=False),
        )
        task_id = new_task_id()
        wf_id = workflow_id_for(task_id)
        s = Sample(variant, t_call=time.time())
        if variant == "api":
            await self.store.insert_pending(task_id, wf_id, task.display_title(), task.description, task.model)
            s.times["t_inserted"] = time.time()
        t_start = time.time()
        handle = await self.client.start_workflow(
            "TaskWorkflow",
            task,
            id=wf_id,
            task_queue=self.queues[variant],
            result_type=TaskResult,
            request_eager_start=variant == "eager",
        )
        s.t_return = time.time()
        while not (rows := await self.store.fetch_steps(task_id)):
            await asyncio.sleep(0.001)
        s.t_seen = time.time()
        s.times["row_created"] = rows[0]["created_at"].timestamp()
        await handle.result()
        history = await handle.fetch_history()
        first_activity = None
        for e in history.events:
            t = e.event_time.seconds + e.event_time.nanos / 1e9
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED and first_activity is None:
                first_activity = e.activity_task_scheduled_event_attributes.activity_type.name
            key = {
                EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "wf_started",
                EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: "wft_scheduled",
                EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: "wft_started",
                EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "wft_completed",
                EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: "act_started",
            }.get(e.event_type)
            if key and key not in s.times:
                s.times[key] = t
        if first_activity != "project":  # the first step was written before any activity (pickup-v1)
            s.times.pop("act_started", None)
        s.times.update(t_call=s.t_call, t_start=t_start, t_return=s.t_return, t_seen=s.t_seen)
        return s


def report(samples: list[Sample], variants: list[str]) -> list[str]:
    lines = [
        "| stage | " + " | ".join(f"{v} p50 | {v} p95" for v in variants) + " |",
        "|---|" + "---|---|" * len(variants),
    ]
    for label, a, b in STAGES:
        cells = []
        for v in variants:
            xs = [(s.times[b] - s.times[a]) * 1000 for s in samples if s.variant == v and a in s.times and b in s.times]
            cells += [f"{pct(xs, 50):.1f}", f"{pct(xs, 95):.1f}"] if xs else ["", ""]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


async def main(rounds: int, baseline: str | None, eager: bool) -> list[str]:
    configure_logging("warning")  # the in-process worker's logs: not what is measured
    with tempfile.TemporaryDirectory(prefix="morgus-pickup-") as tmp:
        async with PickupBench(Path(tmp), baseline, eager) as b:
            variants = list(b.queues)
            samples = []
            for _ in range(rounds):
                for v in variants:
                    samples.append(await b.one(v))
    n = {v: sum(1 for s in samples if s.variant == v) for v in variants}
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"{rounds} rounds, interleaved; samples per variant: {n}; load average after: {load}",
        "",
        *report(samples, variants),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--baseline", default=None, help="a git ref whose worker is measured as `base`")
    parser.add_argument("--no-eager", action="store_true")
    a = parser.parse_args()
    out = asyncio.run(main(a.rounds, a.baseline, not a.no_eager))
    print("\n".join(out))
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
