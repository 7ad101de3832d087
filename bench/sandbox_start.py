"""Sandbox start-up: Morgus's create -> first command ready, against a bare `docker run` of the same image.

    python bench/sandbox_start.py [--runs 20]

Prints a Markdown table (median and p90, seconds) and the ratio; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from morgus.contracts import SandboxOptions
from morgus.sandbox.docker_backend import DockerBackend
from morgus.sandbox.output import CappedOutput


def morgus_start(backend: DockerBackend) -> float:
    ws = Path(tempfile.mkdtemp(prefix="morgus-bench-"))
    task_id = f"bench{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    name = backend.ensure(task_id, f"task-{task_id}", ws, SandboxOptions(), "bench")
    result = backend.exec(name, "true", timeout_s=30, env={}, sink=CappedOutput())
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0
    backend.remove(name)
    return elapsed


def bare_run(image: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True, capture_output=True)
    return time.perf_counter() - started


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backend = DockerBackend()
    morgus_start(backend), bare_run(backend.image)  # warm-up
    morgus = [morgus_start(backend) for _ in range(args.runs)]
    bare = [bare_run(backend.image) for _ in range(args.runs)]
    m, b = statistics.median(morgus), statistics.median(bare)
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"machine: {platform.node()} {platform.machine()}, {platform.processor() or 'cpu'}; docker {docker_version}; image {backend.image}; runs {args.runs}"
    )
    print("| measurement | median s | p90 s |")
    print("|---|---|---|")
    print(f"| Morgus sandbox: create (locked down) -> first command done | {m:.3f} | {p90(morgus):.3f} |")
    print(f"| bare `docker run --rm --network none IMAGE true` | {b:.3f} | {p90(bare):.3f} |")
    print(f"ratio (Morgus / bare): {m / b:.2f}")


if __name__ == "__main__":
    main()
