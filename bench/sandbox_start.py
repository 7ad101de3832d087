"""Sandbox start-up: a claim from the warm pool -> first command done, against Morgus's cold create -> first command
done and a bare `docker run` of the same image, all in the same run (interleaved, so load on a shared machine falls
on each alike).

    python bench/sandbox_start.py [--runs 20]

Prints a Markdown table (median and p90, milliseconds), the ratios, and what an idle pooled container costs in
memory; docs/benchmarks.md records a run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from morgus.contracts import SandboxOptions
from morgus.sandbox.docker_backend import DockerBackend
from morgus.sandbox.output import CappedOutput
from morgus.sandbox.pool import NAME_PREFIX, SandboxPool


def first_command(backend: DockerBackend | SandboxPool, name: str) -> None:
    result = backend.exec(name, "true", timeout_s=30, env={}, sink=CappedOutput())
    assert result.exit_code == 0


def cold_start(backend: DockerBackend, root: Path) -> float:
    task_id = f"bench{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    name = backend.ensure(task_id, f"task-{task_id}", root / task_id, SandboxOptions(), "bench")
    first_command(backend, name)
    elapsed = time.perf_counter() - started
    backend.remove(name)
    return elapsed


def pool_start(pool: SandboxPool, root: Path) -> tuple[float, float]:
    """(claim -> first command done, the claim alone); the pool is refilled outside the timing, as the worker
    does in the background."""
    pool.fill()
    task_id = f"bench{uuid.uuid4().hex[:10]}"
    started = time.perf_counter()
    name = pool.ensure(task_id, f"task-{task_id}", root / task_id, SandboxOptions(), "bench")
    claimed = time.perf_counter()
    first_command(pool, name)
    elapsed = time.perf_counter() - started
    assert name.startswith(NAME_PREFIX), "the pool fell back to a cold create"
    pool.remove(name)
    return elapsed, claimed - started


def bare_run(image: str) -> float:
    started = time.perf_counter()
    subprocess.run(["docker", "run", "--rm", "--network", "none", image, "true"], check=True, capture_output=True)
    return time.perf_counter() - started


def exec_floor(pool: SandboxPool) -> float:
    """Docker's own floor for a command in a running container: a bare exec of `true` through the API (no timeout
    wrapper, no login shell, no container lookup)."""
    pool.fill()
    api = pool.backend.client.api
    container = pool.backend.client.containers.get(pool.ready()[0])
    started = time.perf_counter()
    exec_id = api.exec_create(container.id, ["true"], stdout=True, stderr=True)["Id"]
    for _ in api.exec_start(exec_id, stream=True, demux=True):
        pass
    api.exec_inspect(exec_id)
    return time.perf_counter() - started


def p90(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.9) - 1)]


def idle_cost(pool: SandboxPool) -> tuple[float, float]:
    """MiB per idle pooled container: its cgroup's memory use (init + `sleep infinity`), and the RSS of the
    containerd shim that keeps it (one per container, outside the cgroup)."""
    pool.fill()
    cgroup, shim = [], []
    for name in pool.ready():
        container = pool.backend.client.containers.get(name)
        stats = container.stats(stream=False)
        mem = stats["memory_stats"]
        cgroup.append((mem.get("usage", 0) - mem.get("stats", {}).get("inactive_file", 0)) / 2**20)
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"containerd-shim" in cmdline and container.id.encode() in cmdline:
                    rss_kb = next(
                        int(line.split()[1])
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmRSS:")
                    )
                    shim.append(rss_kb / 1024)
            except (OSError, StopIteration):
                continue
    return statistics.mean(cgroup), statistics.mean(shim) if shim else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backend = DockerBackend()
    root = Path(tempfile.mkdtemp(prefix="morgus-bench-"))
    pool = SandboxPool(backend, root, size=1, idle_s=3600)
    pool.files.prepare()
    try:
        cold_start(backend, root), pool_start(pool, root), bare_run(backend.image)  # warm-up
        cold, warm, claim, bare, floor = [], [], [], [], []
        for _ in range(args.runs):
            floor.append(exec_floor(pool))
            w, c = pool_start(pool, root)
            warm.append(w)
            claim.append(c)
            cold.append(cold_start(backend, root))
            bare.append(bare_run(backend.image))
        cgroup_mib, shim_mib = idle_cost(pool)
    finally:
        pool.drain(close=True)
        shutil.rmtree(root, ignore_errors=True)
    docker_version = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load {load[0]:.2f}; "
        f"docker {docker_version}; image {backend.image}; runs {args.runs} each, interleaved"
    )
    print("| measurement | median ms | p90 ms |")
    print("|---|---|---|")
    rows = [
        ("warm pool: claim -> first command done", warm),
        ("warm pool: the claim alone (no command)", claim),
        ("cold: create (locked down) -> first command done", cold),
        ("bare `docker run --rm --network none IMAGE true`", bare),
        ("floor: bare `docker exec` of `true` in a running container", floor),
    ]
    for label, xs in rows:
        print(f"| {label} | {statistics.median(xs) * 1000:.0f} | {p90(xs) * 1000:.0f} |")
    print(f"ratio (warm / cold): {statistics.median(warm) / statistics.median(cold):.2f}")
    print(f"ratio (cold / bare): {statistics.median(cold) / statistics.median(bare):.2f}")
    print(f"idle pooled container: {cgroup_mib:.1f} MiB in its cgroup + {shim_mib:.1f} MiB containerd shim RSS")


if __name__ == "__main__":
    main()
