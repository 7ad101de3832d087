"""What sets the ~50 ms per-activity plateau on the dev server: the same plain workflow (sequential no-op
activities) on dev servers that differ in one dynamic-config value, side by side (docs/benchmarks.md).

    python bench/plateau_probe.py                 # 80 activities; the default 20, 40 and Morgus's 1000
    python bench/plateau_probe.py --activities 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.floor_workflow import PlateauProbe, floor_noop  # noqa: E402
from morgus.app.stack import TemporalDevServer  # noqa: E402
from tests.conftest import free_port  # noqa: E402

KEY = "history.transferProcessorMaxPollRPS"


async def probe(value: int, n: int, root: Path) -> tuple[float, float, float]:
    server = TemporalDevServer(
        port=free_port(), ui_port=None, log_file=root / f"temporal-{value}.log", dynamic_config={KEY: value}
    )
    server.start()
    try:
        client = await Client.connect(server.address)
        async with Worker(client, task_queue="probe", workflows=[PlateauProbe], activities=[floor_noop]):
            t0 = time.perf_counter()
            ends = await client.execute_workflow(PlateauProbe.run, n, id=f"probe-{value}", task_queue="probe")
            total = time.perf_counter() - t0
        gaps = [b - a for a, b in zip(ends, ends[1:], strict=False)]
        return statistics.median(gaps[:20]), statistics.median(gaps[-40:]), total
    finally:
        server.stop()


async def main(n: int) -> None:
    print(f"| `{KEY}` | first 20 gaps | last 40 gaps | {n} activities |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="morgus-plateau-") as tmp:
        for value in (20, 40, 1000):
            first, last, total = await probe(value, n, Path(tmp))
            print(f"| {value} | {first * 1000:.1f} ms | {last * 1000:.1f} ms | {total * 1000:,.0f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=80)
    asyncio.run(main(parser.parse_args().activities))
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
