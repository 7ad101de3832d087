"""Running git on the host over a work tree the sandbox controls, without running anything the sandbox wrote.

The boundary (docs/security-git.md):
- the repository (config, hooks, index, objects) lives in `Settings.git_root/<task id>.git`, outside every
  workspace; git is always given `--git-dir` and `--work-tree`, so a `.git` folder or file the sandbox planted in
  the work tree is just a path git ignores, never a repository it opens;
- every invocation neutralises each setting that makes git run a command (hooks, fsmonitor, ssh, credential
  helpers, external diff, pagers, editors, signing) and allows only the http(s), git and file transports, with
  no system or global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL`, an empty `HOME`) and an environment
  built from scratch, so nothing of the worker's (API keys) reaches git;
- git runs as an asyncio subprocess with a deadline: never on a thread of the shared pool, never blocking the
  event loop, and killed with its whole process group (remote helpers included) when it overruns or the
  activity is cancelled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from morgus.activities.tools.workspace import ToolError
from morgus.config import Settings

# Each value switches off a way git could start a program chosen by config (ours is empty, but defence in
# depth) or by the remote; `-c` wins over every config file.
NEUTRALISE: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.untrackedCache", "false"),
    ("core.sshCommand", "false"),
    ("core.askPass", ""),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("credential.helper", ""),
    ("diff.external", ""),
    ("diff.ignoreSubmodules", "all"),  # never spawn git inside an embedded repository the sandbox made
    ("status.submoduleSummary", "false"),
    ("submodule.recurse", "false"),
    ("push.recurseSubmodules", "no"),
    ("fetch.recurseSubmodules", "false"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("gpg.program", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("protocol.allow", "never"),
    ("protocol.http.allow", "always"),
    ("protocol.https.allow", "always"),
    ("protocol.git.allow", "always"),
    ("protocol.file.allow", "always"),
    ("http.followRedirects", "false"),  # the token header must not follow a redirect to another host
    ("http.lowSpeedLimit", "1000"),  # a remote that stalls is given up on (bytes/s ...
    ("http.lowSpeedTime", "30"),  # ... for this many seconds)
    ("safe.directory", "*"),  # the worker may be root over files of the sandbox user; the git dir is ours
)

PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class GitResult:
    code: int
    stdout: bytes
    stderr: str


def git_dir_for(settings: Settings, task_id: str) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", task_id):
        raise ToolError(f"task id {task_id!r} cannot name a repository")
    return settings.git_root / f"{task_id}.git"


def _empty_home(settings: Settings) -> Path:
    home = settings.git_root / ".home"
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def scrub(text: str, token: str | None) -> str:
    """Remove the token (raw and as the Basic header git sends) and any credentials embedded in a URL."""
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"x-access-token:{token}".encode()).decode(), "***")
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)


def base_env(settings: Settings) -> dict[str, str]:
    """An environment from scratch: no worker secret, no system/global config, no prompt, literal pathspecs."""
    home = str(_empty_home(settings))
    return {
        "PATH": PATH,
        "HOME": home,
        "XDG_CONFIG_HOME": home,
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_LITERAL_PATHSPECS": "1",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_OPTIONAL_LOCKS": "0",
    }


async def run_git(
    settings: Settings,
    git_dir: Path,
    work_tree: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    timeout_s: float | None = None,
    what: str = "git",
    repository: bool = True,
) -> GitResult:
    """Run one git command on the task's repository (`repository=False`: a command that names its own, such as
    `init`); a deadline kills it and its children (a ToolError)."""
    exe = shutil.which("git", path=PATH)
    if exe is None:
        raise ToolError("git is not installed on this worker")
    config = [arg for key, value in NEUTRALISE for arg in ("-c", f"{key}={value}")]
    where = [f"--git-dir={git_dir}", f"--work-tree={work_tree}"] if repository else []
    argv = [exe, *where, *config, *args]
    timeout = timeout_s or settings.git_timeout_s
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=work_tree if repository else git_dir.parent,
        env={**base_env(settings), **(env or {})},
        start_new_session=True,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        raise ToolError(f"{what} did not finish within {timeout:g}s and was stopped") from None
    except BaseException:  # cancelled: leave nothing running
        _kill_group(proc.pid)
        with contextlib.suppress(BaseException):
            await asyncio.shield(proc.wait())
        raise
    return GitResult(proc.returncode or 0, out, err.decode("utf-8", errors="replace"))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------- push target


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_push_url(url: str, settings: Settings) -> str:
    """The URL to push to (a local remote as its real path). The remote comes from the task's repo_url or MORGUS_GIT_REMOTE (never the workspace); refuse every
    transport but http(s), git:// and a local path, and any local path the sandbox can write to (pushing there
    would run receive-pack over a repository whose hooks the sandbox wrote)."""
    if not url or url != url.strip() or any(c in url for c in "\x00\r\n") or url.startswith("-"):
        raise ToolError("the remote URL is empty or malformed")
    if re.match(r"^[A-Za-z0-9+.-]+::", url):
        raise ToolError(
            "the remote uses a git transport helper (such as ext:: or fd::), which Morgus refuses; "
            "use an http(s), git:// or local path remote"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https", "git"):
        if not parts.hostname:
            raise ToolError("the remote URL has no host")
        return url
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ToolError("a file:// remote must be on this host")
        local = unquote(parts.path)
    elif not scheme and url.startswith("/"):
        local = url
    else:
        raise ToolError(
            "only http(s), git:// and absolute local path remotes are supported "
            "(ssh and scp-style remotes are not); push over https with MORGUS_GIT_TOKEN"
        )
    raw = Path(os.path.normpath(local))
    real = Path(os.path.realpath(local))
    # realpath trusts readlink, and /proc's magic links lie across namespaces: /proc/<sandbox pid>/cwd reads
    # as "/workspace" but opens the task's workspace on the host. The path must be the very folder its real
    # path names (same device and inode), and git is given the real path, so no link is followed later.
    try:
        target = os.stat(local)
    except OSError:
        raise ToolError("the local remote does not exist; create the repository first (git init --bare)") from None
    try:
        named = os.stat(real)
    except OSError:
        named = None
    if named is None or (named.st_dev, named.st_ino) != (target.st_dev, target.st_ino) or _inside(real, Path("/proc")):
        raise ToolError(
            "the local remote goes through a /proc link into another process's files; give the repository's real path"
        )
    for forbidden in (settings.workspace_root, settings.home.resolve()):
        if _inside(raw, forbidden) or _inside(real, forbidden):
            raise ToolError(
                "the remote is a folder inside Morgus's own state or a task workspace, which sandboxed "
                "code can write; push to a repository outside them"
            )
    return str(real)


def auth_env(url: str, token: str | None) -> dict[str, str]:
    """The token as an HTTP header, through the environment of this one push (never its argv, URL or config)."""
    if not token or not url.lower().startswith(("http://", "https://")):
        return {}
    header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {header}",
    }
