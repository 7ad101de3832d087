"""The no-Docker fallback: each command runs in a fresh bubblewrap sandbox over the task's workspace.

Guarantees, and where they are weaker than Docker's (also in docs/sandbox.md):
- no network (a new, empty network namespace), new pid/ipc/uts/user namespaces, no capabilities, non-root;
- the root is read-only: the host's /usr and /etc read-only (the host's toolchain, not the image's; /etc is
  visible, which Docker does not show), tmpfs /tmp and home, only /workspace writable; the worker's environment
  is cleared; other host paths (/root, /home, /work, /tmp of the host) do not exist inside;
- limits are rlimits, not cgroups: RLIMIT_NPROC counts all processes of the sandbox uid on the host (shared by
  the host's bwrap sandboxes), RLIMIT_AS bounds virtual memory (runtimes that reserve large address spaces, such
  as node, need a higher `memory_mb`), RLIMIT_CPU bounds CPU seconds;
- a timeout kills the sandbox's pid namespace, so nothing survives it. Nothing persists between commands except
  the workspace, so there is no container to supervise or reap.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from pathlib import Path

from morgus.contracts import SandboxOptions
from morgus.sandbox.base import ExecResult, ManagedSandbox, SandboxUnavailable, give_to_sandbox_user, sandbox_name
from morgus.sandbox.image import SANDBOX_UID
from morgus.sandbox.output import CappedOutput

HOME = "/home/morgus"
# where the `python` alias is mounted: on the login PATH of a non-root user, empty on Debian-family hosts
GAMES = Path("/usr/local/games")
PATH = f"{HOME}/.local/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


def _untraversable_parent(path: Path, uid: int) -> Path | None:
    for parent in reversed(path.parents):
        st = parent.stat()
        if not (st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)):
            return parent
    return None


def _python_alias(games: Path = GAMES) -> list[str]:
    """`python` as python3 in the sandbox (the Docker image has python-is-python3) when the host's /usr has only
    python3: models write `python x.py` far more often than `python3` (a 1.5B model's EXECUTE ran
    `python site/tests.py` and got "command not found"). Commands run in a login shell, whose /etc/profile resets
    PATH for a non-root user to /usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games, and /usr is bound
    read-only; so the alias lives on a tmpfs mounted over /usr/local/games, an empty directory on Debian-family
    hosts, and only when it is empty (nothing of the host's is hidden) and no symlink leads to it: bwrap mounts
    over the link's target as the sandbox sees it, and a target outside /usr and /etc does not exist there, so
    every command failed ("Can't mount tmpfs on /newroot/usr/local/games: No such file or directory")."""
    if Path("/usr/bin/python").exists() or not Path("/usr/bin/python3").exists():
        return []
    try:
        if games.resolve() != games or not games.is_dir() or any(games.iterdir()):
            return []
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return []
    return ["--tmpfs", str(games), "--symlink", "/usr/bin/python3", f"{games}/python"]


class BwrapBackend:
    name = "bwrap"

    def __init__(self, workspace_root: Path | None = None) -> None:
        for tool in ("bwrap", "prlimit", "setpriv", "timeout"):
            if not shutil.which(tool):
                raise SandboxUnavailable(f"`{tool}` is missing; apt-get install bubblewrap util-linux coreutils")
        self.workspace_root = workspace_root
        self._sandboxes: dict[str, tuple[Path, SandboxOptions]] = {}

    def ensure(self, task_id: str, workflow_id: str, workspace: Path, options: SandboxOptions, host_queue: str) -> str:
        if options.network != "none":
            raise SandboxUnavailable(
                "the bubblewrap sandbox has no network; use the Docker backend for network: egress"
            )
        workspace.mkdir(parents=True, exist_ok=True)
        give_to_sandbox_user(workspace)
        if os.geteuid() == 0:
            blocked = _untraversable_parent(workspace.resolve(), SANDBOX_UID)
            if blocked is not None:
                raise SandboxUnavailable(
                    f"the sandbox user (uid {SANDBOX_UID}) cannot reach the workspace: {blocked} is not traversable; "
                    "put MORGUS_WORKSPACES under a directory others can enter (chmod o+x)"
                )
        name = sandbox_name(task_id)
        self._sandboxes[name] = (workspace.resolve(), options)
        return name

    def _lookup(self, name: str) -> tuple[Path, SandboxOptions]:
        if name in self._sandboxes:
            return self._sandboxes[name]
        if self.workspace_root is not None:  # a worker restarted since `ensure`: the workspace is all there is
            return self.workspace_root / name.removeprefix("morgus-"), SandboxOptions()
        raise SandboxUnavailable(f"unknown sandbox {name}")

    def argv(self, workspace: Path, options: SandboxOptions, command: str, timeout_s: float) -> list[str]:
        limits = [
            "prlimit",
            f"--nproc={options.pids}",
            f"--as={options.memory_mb * 1024 * 1024}",
            f"--cpu={int(timeout_s) + 5}",
            "--",
        ]
        drop = (
            ["setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
            if os.geteuid() == 0
            else []
        )
        bwrap = [
            "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
            "--ro-bind",
            "/etc",
            "/etc",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/sbin",
            "/sbin",
            *(["--symlink", "usr/lib64", "/lib64"] if Path("/usr/lib64").exists() else []),
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            HOME,
            *_python_alias(),
            "--bind",
            str(workspace),
            "/workspace",
            "--chdir",
            "/workspace",
            "--remount-ro",
            "/",
            "--clearenv",
            "--setenv",
            "HOME",
            HOME,
            "--setenv",
            "PATH",
            PATH,
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--",
        ]
        return [*limits, *drop, *bwrap, "timeout", "-s", "KILL", f"{timeout_s:g}", "bash", "-lc", command]

    def exec(self, name: str, command: str, *, timeout_s: float, env: dict[str, str], sink: CappedOutput) -> ExecResult:
        workspace, options = self._lookup(name)
        argv = self.argv(workspace, options, command, timeout_s)
        for key, value in env.items():  # a secret one command needs, and nothing else of the worker's
            argv[argv.index("--clearenv") + 1 : argv.index("--clearenv") + 1] = ["--setenv", key, value]
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        sel = selectors.DefaultSelector()
        assert proc.stdout and proc.stderr
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        open_streams = 2
        while open_streams:
            for ready, _ in sel.select(timeout=1):
                data = os.read(ready.fd, 65536)
                if data:
                    sink.feed(ready.data, data)
                else:
                    sel.unregister(ready.fileobj)
                    open_streams -= 1
        code = proc.wait()
        elapsed = time.monotonic() - started
        code = 128 - code if code < 0 else code  # killed by a signal: report it like a shell does
        return ExecResult(exit_code=code, timed_out=code == 137 and elapsed >= timeout_s - 0.5, duration_s=elapsed)

    def kill_all(self, name: str) -> None:
        """Each command is its own pid namespace; killing its bwrap (done by the caller's timeout) kills all."""
        subprocess.run(["pkill", "-KILL", "-f", f"--bind {self._lookup(name)[0]} /workspace"], check=False)

    def alive(self, name: str) -> bool:
        return self._lookup(name)[0].exists()

    def remove(self, name: str) -> bool:
        return self._sandboxes.pop(name, None) is not None

    def list_managed(self) -> list[ManagedSandbox]:
        return []
