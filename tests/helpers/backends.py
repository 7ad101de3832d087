"""A real sandbox backend, or a skip that says why there is none here."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from morgus.contracts import SandboxOptions
from morgus.sandbox.base import SandboxUnavailable


def docker_or_skip() -> Any:
    try:
        from morgus.sandbox.docker_backend import DockerBackend
        from morgus.sandbox.image import image_exists

        backend = DockerBackend()
    except SandboxUnavailable as e:
        pytest.skip(f"docker backend not available here: {e}")
    if not image_exists(backend.image):
        pytest.skip(f"sandbox image {backend.image} not built (run `morgus sandbox build`)")
    return backend


def bwrap_or_skip() -> Any:
    from morgus.sandbox.bwrap_backend import BwrapBackend

    try:
        backend = BwrapBackend()
    except SandboxUnavailable as e:
        pytest.skip(f"bwrap backend not available here: {e}")
    probe = subprocess.run(backend.argv(Path("/tmp"), SandboxOptions(), "true", 10), capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"bwrap cannot create namespaces here: {probe.stderr.strip()[:200]}")
    return backend


def pooled_sandbox(backend: Any, workspace_root: Path, task_id: str) -> tuple[Any, str]:
    """A sandbox claimed from a warm pool of one (morgus/sandbox/pool.py) over `workspace_root / task_id`: the pool
    (a SandboxBackend) and the claimed container's name. The caller removes both (`remove(name)`, `drain`)."""
    from morgus.sandbox.pool import NAME_PREFIX, SandboxPool

    pool = SandboxPool(backend, workspace_root, size=1, idle_s=3600)
    pool.files.prepare()
    pool.fill()
    name = pool.ensure(task_id, f"task-{task_id}", workspace_root / task_id, SandboxOptions(), "test-queue")
    assert name.startswith(NAME_PREFIX), name  # claimed, not a cold fallback
    return pool, name
