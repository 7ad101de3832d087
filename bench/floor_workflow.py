"""The engine floor the orchestration benchmark compares Morgus with: a plain workflow whose every "step" is two
no-op activities run one after the other, on the same dev server, so a ratio is Morgus's cost over Temporal's own."""

from __future__ import annotations

import time
from datetime import timedelta

from temporalio import activity, workflow

FLOOR_QUEUE = "bench-floor"


@activity.defn(name="bench_floor_noop")
async def floor_noop(step: int) -> float:
    return time.time()


@workflow.defn(name="BenchFloor")
class FloorWorkflow:
    @workflow.run
    async def run(self, steps: int) -> list[float]:
        """The wall time at which each step's first activity ran."""
        starts: list[float] = []
        for i in range(steps):
            starts.append(await workflow.execute_activity(floor_noop, i, start_to_close_timeout=timedelta(seconds=30)))
            await workflow.execute_activity(floor_noop, i, start_to_close_timeout=timedelta(seconds=30))
        return starts


@workflow.defn(name="PlateauProbe")
class PlateauProbe:
    """Sequential no-op activities, one at a time (bench/plateau_probe.py)."""

    @workflow.run
    async def run(self, n: int) -> list[float]:
        return [
            await workflow.execute_activity(floor_noop, i, start_to_close_timeout=timedelta(seconds=30))
            for i in range(n)
        ]
