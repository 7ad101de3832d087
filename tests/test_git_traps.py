"""Adversarial suite, git part: traps planted from inside a real sandbox never run on the host.

Scripted model turns plant, with shell_exec in a real Docker (and bubblewrap) sandbox, every way a repository can
make git start a program: hooks, core.hooksPath, core.fsmonitor, core.sshCommand, credential.helper, filter
drivers named by .gitattributes, diff.external, pager/editor/gpg/askpass, include.path, a `.git` *file* pointing
at a planted git dir, an embedded repository with its own hooks, an `ext::` remote with receivepack/uploadpack.
Each trap, if run, writes a marker file into a host folder the sandbox cannot see. Then the task calls git_init,
git_add, git_commit and git_push (host-side tools) and must complete with every marker absent. A control run of
plain git over the same workspace shows the traps are live (the markers do appear), so the test is not vacuous.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from morgus.activities.tools import ToolError
from morgus.contracts import ActivityTimeouts, TaskResult
from tests.conftest import FAST, start, task_id_of, wait_for
from tests.helpers.backends import bwrap_or_skip, docker_or_skip
from tests.helpers.gitrepos import bare_repo, commit_a_file, marker_dir, markers, trap_repo
from tests.helpers.tools import call, ctx_for

TOKEN = "ghp_TRAPtokenNEVERleaks1234567890"

TRAP_HOOKS = (
    "pre-commit",
    "post-commit",
    "pre-push",
    "post-index-change",
    "reference-transaction",
    "prepare-commit-msg",
    "commit-msg",
    "post-rewrite",
    "pre-auto-gc",
)


def plant_script(mark: str) -> str:
    """Bash run inside the sandbox (cwd /workspace). `mark` is a host folder: a marker there means host code ran."""
    hooks = " ".join(TRAP_HOOKS)
    return f"""set -e
M={mark}
git init -q --separate-git-dir=.evil .
echo 'gitdir: .evil' > .git            # a .git FILE pointing at a planted git dir, relative so host git finds it
mkdir -p .evil/hooks myhooks
for h in {hooks}; do
  printf '#!/bin/sh\\ntouch %s/hook-%s\\n' "$M" "$h" > .evil/hooks/$h; chmod +x .evil/hooks/$h
  printf '#!/bin/sh\\ntouch %s/hookspath-%s\\n' "$M" "$h" > myhooks/$h; chmod +x myhooks/$h
done
git config core.hooksPath myhooks
git config core.fsmonitor "touch $M/fsmonitor; false"
git config core.sshCommand "touch $M/ssh-command"
git config core.askPass "touch $M/askpass"
git config core.pager "touch $M/pager"
git config core.editor "touch $M/editor"
git config credential.helper "!touch $M/credential-helper"
git config filter.x.clean "touch $M/filter-clean; cat"
git config filter.x.smudge "touch $M/filter-smudge; cat"
git config filter.x.process "touch $M/filter-process"
git config filter.x.required true
git config diff.external "touch $M/diff-external"
git config diff.x.textconv "touch $M/textconv; cat"
git config gpg.program "touch $M/gpg"
git config commit.gpgSign true
git config remote.origin.url "ext::sh -c touch% $M/ext-transport"
git config remote.origin.receivepack "touch $M/receivepack"
git config remote.origin.uploadpack "touch $M/uploadpack"
git config include.path ../evil.cfg
printf '[core]\\n\\talternateRefsCommand = touch %s/alternate-refs\\n[uploadpack]\\n\\tpackObjectsHook = touch %s/pack-objects-hook\\n' "$M" "$M" > evil.cfg
echo '* filter=x diff=x' > .gitattributes
echo hello > app.txt
mkdir -p nested && cd nested && git init -q && echo n > n && git add n \\
  && git -c user.name=a -c user.email=a@b commit -qm n && git config core.fsmonitor "touch $M/nested-fsmonitor; false" \\
  && printf '#!/bin/sh\\ntouch %s/nested-hook\\n' "$M" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && cd ..
mkfifo pipe
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')" || true
ln -s /etc/passwd passwd-link
ln -s / root-link
ln -s /nonexistent dangling-link
echo planted
"""


def _traps_are_live(workspace: Path, mark: Path) -> list[str]:
    """Control: plain git (as a naive host-side tool would run it) over the planted workspace fires the traps."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(mark.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
    }
    for args in (["status"], ["add", "app.txt"], ["commit", "--allow-empty", "-m", "x"]):
        subprocess.run(
            ["git", "-c", "safe.directory=*", *args],
            cwd=workspace,
            env=env,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    return markers(mark)


def _ls_tree(bare: Path, ref: str = "main") -> dict[str, tuple[str, str]]:
    out = subprocess.run(
        ["git", "--git-dir", str(bare), "ls-tree", "-r", "-z", ref], capture_output=True, check=True
    ).stdout
    entries = {}
    for line in out.decode().split("\0"):
        if line:
            meta, path = line.split("\t", 1)
            mode, _, sha = meta.split()
            entries[path] = (mode, sha)
    return entries


def _blob(bare: Path, sha: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(bare), "cat-file", "blob", sha], capture_output=True, check=True
    ).stdout


def _regular_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirnames, filenames in os.walk(root):  # os.walk does not follow links
        for name in filenames:
            p = Path(dirpath) / name
            if stat.S_ISREG(os.lstat(p).st_mode):  # never open the FIFO or the socket
                yield p


def _backend(kind: str) -> Any:
    return docker_or_skip() if kind == "docker" else bwrap_or_skip()


@pytest.mark.parametrize("kind", ["docker", "bwrap"])
async def test_git_traps_planted_in_the_sandbox_never_run_on_the_host(
    kind, client, store, settings, llm, capfd, worker_for
):
    from morgus.log import configure_logging

    backend = _backend(kind)
    base = Path(tempfile.mkdtemp(prefix="morgus-gittraps-"))
    base.chmod(0o755)  # the unprivileged sandbox user must reach the workspace (bwrap, as root)
    mark = marker_dir(base)
    bare = bare_repo(base / "remote.git")
    settings = settings.model_copy(update={"git_token": TOKEN, "workspaces": base / "ws"})
    settings.__dict__.pop("workspace_root", None)  # a cached_property of the copied settings
    configure_logging("debug")
    scenario = f"git-traps-{kind}"
    marker = llm.add(
        scenario,
        [
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "shell_exec", "arguments": {"command": plant_script(str(mark)), "timeout_s": 60}}
                ],
            },
            {
                "content": None,
                "tool_calls": [
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {"name": "git_commit", "arguments": {"message": "trapped"}},
                ],
            },
            {"content": "build done"},
            {"content": "execute done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "git_add", "arguments": {"paths": ["."]}},
                    {"name": "git_commit", "arguments": {"message": "again"}},
                    {"name": "git_push", "arguments": {"remote": "origin", "branch": "main"}},
                ],
            },
            {"content": "pushed"},
        ],
    )
    try:
        async with worker_for(settings, backend=backend):
            handle = await start(client, settings, marker, repo_url=str(bare))
            result: TaskResult = await asyncio.wait_for(handle.result(), 240)
    finally:
        configure_logging("warning")
    task_id = task_id_of(handle)
    workspace = settings.workspace_for(task_id)
    tool_results = [m["content"] for m in llm.requests_for(scenario)[-1].body["messages"] if m["role"] == "tool"]
    assert result.status == "completed"
    assert "planted" in tool_results[0], tool_results[0]
    assert "is ignored" in tool_results[1], tool_results[1]  # git_init says the planted .git is not used
    assert tool_results[3].startswith("committed"), tool_results[3]
    assert tool_results[-1].startswith("pushed"), tool_results[-1]

    assert markers(mark) == [], "a trap planted in the sandbox ran on the host"

    tree = _ls_tree(bare)
    assert _blob(bare, tree["app.txt"][1]) == b"hello\n"
    assert (
        tree["passwd-link"] == ("120000", tree["passwd-link"][1])
        and _blob(bare, tree["passwd-link"][1]) == b"/etc/passwd"
    )
    assert tree["root-link"][0] == "120000" and _blob(bare, tree["root-link"][1]) == b"/"
    assert tree["nested"][0] == "160000"  # an embedded repository is a link to it, never entered
    assert not {"pipe", "sock", ".git"} & tree.keys()
    assert not any(p.startswith(("root-link/", ".git/")) for p in tree)

    # the token: nowhere in the work tree, the repository, steps, messages, history or logs
    git_dir = settings.git_root / f"{task_id}.git"
    for f in [*_regular_files(workspace), *_regular_files(git_dir), *_regular_files(settings.home / "logs" / task_id)]:
        assert TOKEN.encode() not in f.read_bytes(), f
    dump = json.dumps(
        [await store.fetch_steps(task_id), [m.model_dump() for m in await store.load_messages(task_id, 10_000)]],
        default=str,
    )
    assert TOKEN not in dump and TOKEN not in (await handle.fetch_history()).to_json()
    captured = capfd.readouterr()
    assert TOKEN not in captured.out + captured.err

    fired = _traps_are_live(workspace, mark)  # control: the same workspace under naive host git
    assert {"fsmonitor", "hookspath-pre-commit"} <= set(fired), fired


# ---------------------------------------------------------------- without a sandbox (plain host files)


async def test_a_dotgit_file_pointing_outside_is_ignored_and_fifos_do_not_hang(settings, tmp_path):
    mark = marker_dir(tmp_path)
    elsewhere = tmp_path / "somewhere.git"
    trap_repo(elsewhere, mark)
    ctx = ctx_for(settings)
    ws = ctx.workspace
    (ws / ".git").write_text(f"gitdir: {elsewhere}\n")
    (ws / "sub").mkdir()
    (ws / "sub" / ".git").write_text(f"gitdir: {elsewhere}\n")
    (ws / "sub" / "f.txt").write_text("f")
    os.mkfifo(ws / "pipe")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(ws / "sock"))
    (ws / "dir-link").symlink_to("/etc", target_is_directory=True)
    (ws / "a.txt").write_text("a")
    with pytest.raises(ToolError, match=r"is not used\); call git_init first"):
        await call("git_add", ctx)
    assert "is ignored" in await call("git_init", ctx)
    staged = await asyncio.wait_for(call("git_add", ctx), 60)  # a FIFO must not hang git
    # sub/ holds a .git file, so git records it as a link to that repository (never entering or running it)
    assert "a.txt" in staged and "dir-link" in staged and "pipe" not in staged and "sock" not in staged
    assert (await call("git_commit", ctx, message="m")).startswith("committed")
    assert markers(mark) == []
    assert not (elsewhere / "index").exists()  # the planted git dir was never used as the repository


async def test_large_files_are_refused_with_a_clear_result(settings):
    settings = settings.model_copy(update={"git_max_file_mb": 1})
    ctx = ctx_for(settings)
    ws = ctx.workspace
    (ws / "small.txt").write_text("s")
    with (ws / "big.bin").open("wb") as f:
        f.truncate(2 * 1024 * 1024)
    await call("git_init", ctx)
    with pytest.raises(ToolError, match=r"larger than 1 MB: big\.bin \(2 MB\)"):
        await call("git_add", ctx)
    assert "small.txt" in await call("git_add", ctx, paths=["small.txt"])
    (ws / ".gitignore").write_text("big.bin\n")
    assert "staged" in await call("git_add", ctx)


async def test_push_targets_that_could_run_code_are_refused(settings, tmp_path):
    mark = marker_dir(tmp_path)
    ctx = ctx_for(settings)
    await commit_a_file(ctx)
    in_workspace = ctx.workspace / "evil.git"  # a repository the sandbox can write, hooks and all
    trap_repo(in_workspace, mark)
    link_to_workspace = tmp_path / "innocent.git"
    link_to_workspace.symlink_to(in_workspace)
    refused = {
        f"ext::sh -c touch% {mark}/ext": "transport helper",
        "fd::0": "transport helper",
        f"file::{mark}": "transport helper",
        "ssh://git@example.com/x.git": "ssh and scp-style",
        "git@example.com:x.git": "ssh and scp-style",
        "relative/path.git": "ssh and scp-style",
        f"-u{mark}": "malformed",
        str(in_workspace): "inside Morgus's own state or a task workspace",
        f"file://{in_workspace}": "inside Morgus's own state or a task workspace",
        str(link_to_workspace): "inside Morgus's own state or a task workspace",
        str(settings.git_root / f"{ctx.task_id}.git"): "inside Morgus's own state",
        "file://otherhost/x.git": "on this host",
    }
    for url, why in refused.items():
        ctx.repo_url = url
        with pytest.raises(ToolError, match=why):
            await call("git_push", ctx)
    assert markers(mark) == []


async def test_push_ignores_remote_settings_planted_in_the_workspace(settings, tmp_path):
    """An old-style in-workspace .git/config with receivepack/uploadpack/ext:: remotes is never read."""
    mark = marker_dir(tmp_path)
    bare = bare_repo(tmp_path / "remote.git")
    ctx = ctx_for(settings, repo_url=str(bare))
    dotgit = ctx.workspace / ".git"
    subprocess.run(["git", "init", "-q", str(ctx.workspace)], check=True)
    with (dotgit / "config").open("a") as f:
        f.write(
            f'[remote "origin"]\n\turl = ext::sh -c touch% {mark}/ext\n\treceivepack = touch {mark}/receivepack\n'
            f"\tuploadpack = touch {mark}/uploadpack\n[core]\n\tsshCommand = touch {mark}/ssh\n"
            f"[credential]\n\thelper = !touch {mark}/credential\n"
        )
    await commit_a_file(ctx)
    out = await call("git_push", ctx)
    assert out.startswith("pushed") and markers(mark) == []
    assert _ls_tree(bare).keys() == {"a.txt"}


# ---------------------------------------------------------------- a slow push does not starve other tasks


async def _all_runs(client: Any, workflow_id: str) -> list[dict[str, Any]]:
    """Events of every run of a workflow (the task continues as new), oldest first."""
    events: list[dict[str, Any]] = []
    run_id: str | None = None
    while True:
        history = json.loads((await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).to_json())
        events = history["events"] + events
        started = history["events"][0]["workflowExecutionStartedEventAttributes"]
        run_id = started.get("continuedExecutionRunId")
        if not run_id:
            return events


@contextmanager
def stalling_server() -> Iterator[str]:
    """Accepts connections and never answers: a remote that hangs a push."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/org/repo.git"
    finally:
        stop.set()
        for c in held:
            c.close()
        listener.close()


async def test_a_stalled_push_times_out_while_another_tasks_sandbox_keeps_heartbeating(
    client, store, settings, llm, worker_for
):

    backend = _backend("docker")
    settings = settings.model_copy(update={"git_timeout_s": 12.0, "git_token": TOKEN})
    quick = ActivityTimeouts(heartbeat=2, llm_start_to_close=60, tool_start_to_close=120, projection_start_to_close=30)
    sleeper = llm.add(
        "heartbeat-neighbour",
        [
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "shell_exec", "arguments": {"command": "sleep 25; echo slept", "timeout_s": 60}}
                ],
            },
            {"content": "build done"},
            {"content": "execute done"},
            {"content": "finalized"},
        ],
    )
    pusher = llm.add(
        "stalled-push",
        [
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "file_write", "arguments": {"path": "a.txt", "content": "a"}},
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {"name": "git_commit", "arguments": {"message": "m"}},
                ],
            },
            {"content": "build done"},
            {"content": "execute done"},
            {"content": None, "tool_calls": [{"name": "git_push", "arguments": {}}]},
            {"content": "push failed, reported"},
        ],
    )
    with stalling_server() as url:
        async with worker_for(settings, backend=backend):
            neighbour = await start(client, settings, sleeper, timeouts=quick)
            neighbour_id = task_id_of(neighbour)

            async def sleeping() -> bool:
                steps = await store.fetch_steps(neighbour_id)
                return any("sleep 25" in s["content"] for s in steps if s["type"] == "TOOL_CALL")

            await wait_for(sleeping, timeout=90, what="the neighbour's sandboxed command")
            pushing = await start(client, settings, pusher, repo_url=url, timeouts=FAST)
            pushed: TaskResult = await asyncio.wait_for(pushing.result(), 120)
            slept: TaskResult = await asyncio.wait_for(neighbour.result(), 120)
    assert pushed.status == "completed" and slept.status == "completed"
    push_result = [m["content"] for m in llm.requests_for("stalled-push")[-1].body["messages"] if m["role"] == "tool"][
        -1
    ]
    assert "git push did not finish within 12s and was stopped" in push_result and TOKEN not in push_result
    events = await _all_runs(client, neighbour.id)
    kinds = [e["eventType"] for e in events]
    assert "EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT" not in kinds, "a heartbeat timed out while the push stalled"
    creates = [
        e
        for e in events
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"
        and e["activityTaskScheduledEventAttributes"]["activityType"]["name"] == "sandbox_create"
    ]
    assert len(creates) == 1, "the neighbour's sandbox was recreated"
    neighbour_results = [
        m["content"] for m in llm.requests_for("heartbeat-neighbour")[-1].body["messages"] if m["role"] == "tool"
    ]
    assert "slept" in neighbour_results[0]
