"""Parallel tool calls (issue 15, goal 2): a model turn of 5 `fetch_url` calls to a local server that answers each in
500 ms, against the same 5 fetches made in 5 one-call turns, in the same run (real dev server, Postgres, worker
process; zero-latency scripted model).

    python bench/parallel_tools.py            # 5 runs of each
    python bench/parallel_tools.py --small    # 1 run of each (CI)
    python bench/parallel_tools.py --write    # also replace the results section of docs/benchmarks.md

Measured from the task's own rows: from the turn's LLM_RESPONSE step to its last TOOL_RESULT step (for the
one-call turns: from the first turn's response to the fifth turn's result).
"""

from __future__ import annotations

import asyncio
import platform
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from statistics import median
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.orchestration import Bench, run_main, write_section  # noqa: E402
from morgus.app.tasks import start_task  # noqa: E402
from morgus.contracts import TaskInput, TaskLimits  # noqa: E402

MARK_BEGIN, MARK_END = "<!-- bench:parallel:begin -->", "<!-- bench:parallel:end -->"
ANSWER_S = 0.5
CALLS = 5


class SlowPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        time.sleep(ANSWER_S)
        body = f"page {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def fetches(base: str, run: str) -> list[dict[str, Any]]:
    return [{"name": "fetch_url", "arguments": {"url": f"{base}/{run}/{i}"}} for i in range(CALLS)]


async def turn_seconds(b: Bench, name: str, replies: list[dict[str, Any]]) -> float:
    marker = b.llm.add(name, [*replies, {"content": "done"}], repeat_last=True)
    task = TaskInput(
        title=name,
        description=f"bench {marker}",
        model="bench",
        limits=TaskLimits(max_iterations_per_phase=CALLS + 5, loop_repeats=100, require_work=False),
    )
    handle = await start_task(b.client, task, task_queue="bench")
    result = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "completed", result
    rows = [r for r in await b.store.fetch_steps(handle.id.removeprefix("task-")) if r["phase"] == "RESEARCH"]
    first = min(r["created_at"] for r in rows if r["type"] == "LLM_RESPONSE")
    last = max(r["created_at"] for r in rows if r["type"] == "TOOL_RESULT")
    oks = [r for r in rows if r["type"] == "TOOL_RESULT" and r["metadata"].get("ok")]
    assert len(oks) == CALLS, f"{name}: {len(oks)} of {CALLS} fetches worked"
    return (last - first).total_seconds()


async def main(small: bool, write: bool) -> int:
    runs = 1 if small else 5
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    one_turn: list[float] = []
    one_by_one: list[float] = []
    with tempfile.TemporaryDirectory(prefix="morgus-bench-") as tmp:
        # the worker may fetch the bench's loopback server
        async with Bench(Path(tmp) / "parallel", worker_env={"MORGUS_FETCH_ALLOW": "127.0.0.1"}) as b:
            for i in range(runs):  # alternated, so both see the same machine load
                calls = fetches(base, f"one-turn-{i}")
                one_turn.append(await turn_seconds(b, f"par-{i}-{time.monotonic_ns()}", [{"tool_calls": calls}]))
                turns = [{"tool_calls": [c]} for c in fetches(base, f"one-by-one-{i}")]
                one_by_one.append(await turn_seconds(b, f"seq-{i}-{time.monotonic_ns()}", turns))
    server.shutdown()
    machine = (
        f"{platform.node()}: {psutil.cpu_count()} cores, Python {platform.python_version()}; "
        f"{datetime.now().date()}; mode {'small' if small else 'full'}, {runs} run(s) of each, alternated"
    )
    p, s = median(one_turn), median(one_by_one)
    report = "\n".join(
        [
            f"Machine: {machine}",
            "",
            f"{CALLS} `fetch_url` calls to a local server that answers each in {ANSWER_S * 1000:.0f} ms "
            f"({CALLS * ANSWER_S:.1f} s of waiting one after another):",
            "",
            "| | median | all runs |",
            "|---|---|---|",
            f"| one turn of {CALLS} calls (parallel-tools-v1) | **{p:.2f} s** | "
            + ", ".join(f"{x:.2f}" for x in one_turn)
            + " |",
            f"| {CALLS} turns of one call | {s:.2f} s | " + ", ".join(f"{x:.2f}" for x in one_by_one) + " |",
            "",
            f"Ratio: {p / s:.2f} of the one-call turns' time.",
        ]
    )
    print(report)
    if write:
        write_section(MARK_BEGIN, MARK_END, report)
    return 0


if __name__ == "__main__":
    run_main(main)
