"""The `python` alias of the bubblewrap sandbox (morgus/sandbox/bwrap_backend.py `_python_alias`): a tmpfs over an
empty directory on the login PATH. A host where that directory is a symlink must not lose its sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from morgus.sandbox.bwrap_backend import _python_alias
from tests.helpers.backends import bwrap_or_skip

needs_python3_only = pytest.mark.skipif(
    Path("/usr/bin/python").exists() or not Path("/usr/bin/python3").exists(),
    reason="the alias is made only where /usr/bin has python3 and no python",
)


def _sandbox(tmp_path: Path, extra: list[str], command: str) -> subprocess.CompletedProcess:
    """bwrap with the host's /usr and `tmp_path` (read-only, at the same path) and `extra` arguments."""
    argv = [
        "bwrap", "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        *(["--symlink", "usr/lib64", "/lib64"] if Path("/usr/lib64").exists() else []),
        "--proc", "/proc", "--dev", "/dev", "--ro-bind", str(tmp_path), str(tmp_path),
        *extra, "--", "/bin/sh", "-c", command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@needs_python3_only
def test_the_alias_runs_python_from_an_empty_directory(tmp_path):
    bwrap_or_skip()
    games = tmp_path / "games"
    games.mkdir()
    alias = _python_alias(games)
    assert alias, "an empty real directory takes the alias"
    ran = _sandbox(tmp_path, alias, f"{games}/python -c 'print(6 * 7)'")
    assert (ran.returncode, ran.stdout.strip()) == (0, "42"), ran.stderr


@needs_python3_only
def test_a_symlinked_or_busy_directory_gets_no_alias_and_the_sandbox_still_runs(tmp_path):
    """/usr/local/games as a symlink to an empty directory the sandbox does not see: bwrap mounted the tmpfs over
    the link's missing target and failed every command ("Can't mount tmpfs … No such file or directory")."""
    bwrap_or_skip()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    visible = tmp_path / "visible"
    visible.mkdir()
    (visible / "game").write_text("")  # a directory with content is never hidden
    for games in (tmp_path / "link-out", tmp_path / "link-in", tmp_path / "loop", visible, tmp_path / "missing"):
        if games.name == "link-out":
            games.symlink_to(outside)
        elif games.name == "link-in":
            games.symlink_to(tmp_path / "empty-target")
            (tmp_path / "empty-target").mkdir()
        elif games.name == "loop":
            games.symlink_to(games)
        assert _python_alias(games) == [], games
        ran = _sandbox(tmp_path, _python_alias(games), "true")
        assert ran.returncode == 0, (games, ran.stderr)
