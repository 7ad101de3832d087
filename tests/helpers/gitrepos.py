"""Git repositories for the git tools' tests: a bare remote, a repository rigged with traps that would leave a
marker file if any git ran its hooks or config, and a workspace with one commit made through the tools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from morgus.activities.tools import ToolContext
from tests.helpers.tools import call


def bare_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def marker_dir(parent: Path) -> Path:
    """An empty folder for trap markers: anything that appears in it is host code a trap ran."""
    mark = parent / "markers"
    mark.mkdir()
    return mark


def markers(mark: Path) -> list[str]:
    return sorted(os.listdir(mark))


def trap_repo(path: Path, mark: Path) -> None:
    """A git dir whose config and hooks would write markers if any git used it."""
    bare_repo(path)
    plumb = ["git", "--git-dir", str(path), "-c", "user.name=a", "-c", "user.email=a@b"]
    tree = subprocess.run([*plumb, "mktree"], input=b"", capture_output=True, check=True).stdout.decode().strip()
    commit = (
        subprocess.run([*plumb, "commit-tree", tree, "-m", "c"], capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    subprocess.run([*plumb, "update-ref", "HEAD", commit], check=True)
    for hook in ("pre-commit", "post-commit", "pre-receive", "post-receive", "update", "post-index-change"):
        h = path / "hooks" / hook
        h.write_text(f"#!/bin/sh\ntouch {mark}/hook-{hook}\n")
        h.chmod(0o755)
    with (path / "config").open("a") as f:
        f.write(f"[core]\n\tfsmonitor = touch {mark}/fsmonitor; false\n")


async def commit_a_file(ctx: ToolContext) -> None:
    """a.txt written and committed through git_init, git_add and git_commit."""
    (ctx.workspace / "a.txt").write_text("a")
    await call("git_init", ctx)
    await call("git_add", ctx)
    await call("git_commit", ctx, message="m")
