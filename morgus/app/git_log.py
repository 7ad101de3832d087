"""A task's commits for the API: `git log` of the host-owned repository (Settings.git_root/<task>.git).

Git runs through the same hardened runner as the git tools (morgus/activities/tools/git_safe.py): `--git-dir` and
`--work-tree` given (a `.git` the sandbox planted in the work tree is never opened), every command-running setting
neutralised, no system or global config, an environment from scratch, a deadline. The log itself reads no work
tree file; on top of the runner it asks for no mailmap, notes, signatures, textconv or external diff, and the
output is read with -z (a file name holding a newline or a NUL-free oddity cannot shift the fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from morgus.activities.tools.git_safe import git_dir_for, run_git
from morgus.config import Settings

MAX_COMMITS = 100
MAX_FILES = 200  # names listed per commit (the rest counted)
MAX_MESSAGE_CHARS = 10_000
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_STATUS = re.compile(
    r"^[ACDMRTUXB][0-9]{0,3}$"
)  # what --name-status prints (R/C with a score under --no-renames: none)


@dataclass
class ChangedFile:
    status: str  # A added, M modified, D deleted, T type changed
    path: str


@dataclass
class Commit:
    sha: str
    author: str
    email: str
    date: datetime
    message: str
    files: list[ChangedFile] = field(default_factory=list)
    files_total: int = 0


@dataclass
class GitLog:
    has_repository: bool
    commits: list[Commit]
    truncated: bool  # older commits exist beyond MAX_COMMITS


class LogError(Exception):
    """git failed on a repository that exists: the API's 500-class answer, with git's words kept out of it."""


def _text(raw: str) -> str:
    return raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def parse_log(out: str) -> list[Commit]:
    """`git log -z --name-status --format=%H%x00%an%x00%ae%x00%aI%x00%B` as commits. After a commit's five fields
    come (status, name) pairs; a status is one letter (maybe with a score), never 40 hex digits, so the next commit's
    sha is told from a status even when a file is named like one."""
    tokens = out.split("\0")
    commits: list[Commit] = []
    i = 0
    while i + 5 <= len(tokens):
        sha = tokens[i].lstrip("\n")
        if not _SHA.match(sha):
            break
        author, email, date, message = tokens[i + 1 : i + 5]
        i += 5
        c = Commit(sha, _text(author), _text(email), datetime.fromisoformat(date), _text(message.rstrip("\n")))
        if len(c.message) > MAX_MESSAGE_CHARS:
            c.message = c.message[:MAX_MESSAGE_CHARS] + f" … ({len(c.message) - MAX_MESSAGE_CHARS} more characters)"
        while i + 1 < len(tokens) and _STATUS.match(tokens[i].lstrip("\n")):
            c.files_total += 1
            if len(c.files) < MAX_FILES:
                c.files.append(ChangedFile(tokens[i].lstrip("\n")[:1], _text(tokens[i + 1])))
            i += 2
        commits.append(c)
    return commits


async def read_log(settings: Settings, task_id: str, work_tree: Path) -> GitLog:
    """The newest MAX_COMMITS commits of the task's repository, each with the files it changed. No repository (no
    git_init yet) or no commit yet: an empty log."""
    git_dir = git_dir_for(settings, task_id)
    if not (git_dir / "HEAD").is_file():
        return GitLog(False, [], False)
    # The log never reads the work tree; when the workspace is not on this host, the repository's own folder
    # stands in for it (git needs a directory to run in).
    tree = work_tree if work_tree.is_dir() else git_dir
    head = await run_git(settings, git_dir, tree, "rev-parse", "--verify", "--quiet", "HEAD", what="git log")
    if head.code != 0:
        return GitLog(True, [], False)
    result = await run_git(
        settings,
        git_dir,
        tree,
        "-c",
        "log.showSignature=false",
        "-c",
        "log.mailmap=false",
        "log",
        f"--max-count={MAX_COMMITS + 1}",
        "-z",
        "--no-color",
        "--no-decorate",
        "--no-notes",
        "--no-mailmap",
        "--no-textconv",
        "--no-ext-diff",
        "--no-renames",
        "--name-status",
        "--format=%H%x00%an%x00%ae%x00%aI%x00%B",
        "HEAD",
        "--",
        what="git log",
    )
    if result.code != 0:
        raise LogError(f"git log failed (exit code {result.code})")
    commits = parse_log(result.stdout.decode("utf-8", "surrogateescape"))
    return GitLog(True, commits[:MAX_COMMITS], len(commits) > MAX_COMMITS)
