"""Where a task's commands run: a per-task locked-down container (Docker) or, without Docker, a bubblewrap
sandbox over the same workspace. `select_backend()` picks one; morgus/activities/sandbox.py drives its lifecycle."""

from morgus.sandbox.base import ExecResult, SandboxBackend, SandboxUnavailable, sandbox_name, select_backend

__all__ = ["ExecResult", "SandboxBackend", "SandboxUnavailable", "sandbox_name", "select_backend"]
