"""Names the sandbox picks against the workspace reader (morgus/app/workspace_files.py). No server.

The workspace archive leaves out every spelling of `.git` a checkout on the operator's machine would take for one
(morgus/app/workspace_files.py `is_git_name`). No server: the archive is built from a folder on disk and read back.

The sandbox writes the workspace. A planted `.git/config` (core.fsmonitor) runs a command on the machine of
whoever runs `git status` in the extracted folder, so `.git` is left out; but macOS (APFS, HFS+) and Windows file
systems are case-insensitive, HFS+ ignores some invisible characters, and Windows drops trailing dots and spaces
and answers to 8.3 short names: `.GIT`, `.Git`, `.g\u200cit`, `.git.`, `.git ` and `git~1` are all `.git` there
(the same spellings git itself refuses to check out, CVE-2014-9390)."""

from __future__ import annotations

import io
import tarfile
import uuid

import pytest

from morgus.activities.tools.workspace import ToolError
from morgus.app import workspace_files as wf

FSMONITOR = "[core]\n\tfsmonitor = touch /tmp/pwned\n"
GIT_SPELLINGS = [
    ".git",
    ".GIT",
    ".Git",
    ".gIt",
    ".g\u200cit",
    "\u200d.git",
    ".git\ufeff",
    ".git.",
    ".git ",
    ".git. .",
    "git~1",
    "GIT~1",
    ".git::$INDEX_ALLOCATION",
]


def archived_names(root) -> list[str]:
    data = b"".join(wf.archive_chunks(root, "task-x"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


@pytest.mark.parametrize("name", GIT_SPELLINGS)
def test_no_spelling_of_git_reaches_the_archive(tmp_path, name):
    root = tmp_path / str(uuid.uuid4())
    (root / name / "hooks").mkdir(parents=True)
    (root / name / "config").write_text(FSMONITOR)
    (root / name / "hooks" / "post-checkout").write_text("#!/bin/sh\ntouch /tmp/pwned\n")
    (root / "sub" / name).mkdir(parents=True)  # a nested repository's .git is as dangerous
    (root / "sub" / name / "config").write_text(FSMONITOR)
    (root / "index.html").write_text("<h1>hi</h1>")
    names = archived_names(root)
    assert sorted(names) == ["task-x", "task-x/index.html", "task-x/sub"], names
    assert not wf.is_git_name("index.html")


@pytest.mark.parametrize("name", [".github", "git", ".gitignore", ".gitx", "x.git", "git~2", ".git-blame-ignore-revs"])
def test_names_that_only_look_alike_are_kept(tmp_path, name):
    root = tmp_path / str(uuid.uuid4())
    (root / name).mkdir(parents=True)
    (root / name / "f").write_text("kept")
    assert f"task-x/{name}/f" in archived_names(root)
    assert not wf.is_git_name(name)


def test_a_folder_named_by_spaces_is_never_listed_as_the_top(tmp_path):
    """A top-level folder the sandbox names ' ' must not answer with the workspace's top (the console would show
    the top again and again beneath it); it cannot be named through the API, so it is refused."""
    root = tmp_path / str(uuid.uuid4())
    (root / " ").mkdir(parents=True)
    (root / " " / "inside.txt").write_text("x")
    (root / "top.txt").write_text("x")
    top, _ = wf.list_folder(root, "")
    assert sorted(e.name for e in top) == [" ", "top.txt"]
    for rel in (" ", "  ", "\t"):
        try:
            entries, _ = wf.list_folder(root, rel)
        except ToolError:
            continue
        assert [e.name for e in entries] == ["inside.txt"], rel
