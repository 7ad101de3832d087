"""Where a task's code runs. The spine runs file tools on the worker host's workspace; the sandbox issue adds
the Docker (and bubblewrap) backends behind this interface, and `shell_exec` on top of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class Sandbox(Protocol):
    """One task's isolated execution environment over its workspace."""

    @property
    def workspace(self) -> Path: ...

    async def exec(self, argv: list[str], *, timeout_s: float, env: dict[str, str] | None = None) -> ExecResult:
        """Run `argv` as given (never re-split), killing its whole process group at `timeout_s`."""
        ...
