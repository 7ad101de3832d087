"""How fast a row starts its task (issue 16): a `pending` row inserted by plain SQL (as supabase-js would, through
PostgREST) until its TaskWorkflow has started (the server's start time), with the intake running in a real worker
process (NOTIFY trigger + LISTEN; the sweep every 5 s is only the fallback).

    python bench/intake_latency.py            # 30 rows
    python bench/intake_latency.py --rows 100
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orchestration import Bench, pct  # noqa: E402


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="morgus-intake-") as tmp:
        async with Bench(Path(tmp)) as b:
            marker = b.llm.add(f"intake-{time.monotonic_ns()}", [{"content": "done"}], repeat_last=True)
            waits: list[float] = []
            for _ in range(n):
                tid = str(uuid.uuid4())
                with psycopg.connect(b.pg.dsn, autocommit=True) as conn:
                    conn.execute(
                        "insert into tasks (id, description, model) values (%s, %s, 'bench')",
                        (tid, f"bench {marker}"),
                    )
                    inserted = time.time()
                while True:
                    try:
                        desc = await b.client.get_workflow_handle(f"task-{tid}").describe()
                        break
                    except Exception:  # noqa: BLE001 - not started yet
                        await asyncio.sleep(0.002)
                waits.append(desc.start_time.timestamp() - inserted)
                await b.client.get_workflow_handle(f"task-{tid}").result()
    print(
        f"insert → workflow started, {n} rows: p50 {pct(waits, 50) * 1000:.0f} ms, p95 {pct(waits, 95) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=30)
    asyncio.run(main(parser.parse_args().rows))
    sys.stdout.flush()
    os._exit(0)  # temporalio/sdk-python#300
