"""git_init, git_add, git_commit, git_push: the git CLI over the task's workspace, hardened by git_safe.

The repository lives on the host in `MORGUS_HOME/git/<task id>.git`; the workspace is only its work tree, so
nothing the sandbox writes (a `.git/hooks/pre-commit`, a `core.fsmonitor`, a filter) is ever read as git
config. The push token (MORGUS_GIT_TOKEN) reaches git only through the environment of the push itself, never
the remote URL, the repository config, the sandbox, a step, a log or an error message: every text that leaves
this module is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from pathlib import Path

from pydantic import Field

from morgus.activities.tools.git_safe import auth_env, check_push_url, git_dir_for, run_git, scrub
from morgus.activities.tools.registry import ToolArgs, ToolContext, ToolOutput, tool
from morgus.activities.tools.workspace import ToolError, resolve_in_workspace
from morgus.contracts import ArtifactRecord

_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>\n]+?)\s*<(?P<email>[^<>@\s]+@[^<>\s]*)>\s*$")
NAMES_SHOWN = 50


class GitInitArgs(ToolArgs):
    pass


class GitAddArgs(ToolArgs):
    paths: list[str] = Field(default_factory=lambda: ["."], description="Paths relative to the workspace.")


class GitCommitArgs(ToolArgs):
    message: str = Field(min_length=1, max_length=20_000, description="The commit message, exactly as it should read.")


class GitPushArgs(ToolArgs):
    remote: str = Field(default="origin", pattern=r"^[A-Za-z0-9._-]+$")
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")


async def _git(
    ctx: ToolContext,
    *args: str,
    action: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    check: bool = True,
    repository: bool = True,
) -> str:
    result = await run_git(
        ctx.settings,
        git_dir_for(ctx.settings, ctx.task_id),
        ctx.workspace,
        *args,
        env=env,
        stdin=stdin,
        what=action,
        repository=repository,
    )
    if check and result.code != 0:
        detail = result.stderr.strip() or f"exit code {result.code}"
        raise ToolError(scrub(f"{action} failed: {detail[-2000:]}", ctx.settings.git_token))
    return result.stdout.decode("utf-8", errors="replace")


def _require_repo(ctx: ToolContext) -> Path:
    git_dir = git_dir_for(ctx.settings, ctx.task_id)
    if not (git_dir / "HEAD").is_file():
        planted = (
            " (a .git in the workspace was made inside the sandbox and is not used)"
            if os.path.lexists(ctx.workspace / ".git")
            else ""
        )
        raise ToolError(f"the workspace is not a git repository yet{planted}; call git_init first")
    return git_dir


def _names(out: str) -> list[str]:
    return [n for n in out.split("\0") if n]


@tool("git_init", GitInitArgs, "Create a git repository in the workspace (branch main). Safe to call twice.")
async def git_init(ctx: ToolContext, args: GitInitArgs) -> str:
    git_dir = git_dir_for(ctx.settings, ctx.task_id)
    if (git_dir / "HEAD").is_file():
        return "the workspace is already a git repository"
    git_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # --template= : no sample hooks, nothing copied from the host's templates
    await _git(
        ctx,
        "init",
        "--quiet",
        "--bare",
        "--template=",
        "--initial-branch=main",
        str(git_dir),
        action="git init",
        repository=False,
    )
    await _git(ctx, "config", "core.bare", "false", action="git init")
    note = ""
    if os.path.lexists(ctx.workspace / ".git"):
        note = (
            "; the .git already in the workspace was made inside the sandbox: it is ignored (history and "
            "settings in it are not used) and the repository starts fresh"
        )
    return f"initialised an empty git repository in the workspace (branch main){note}"


async def _too_large(ctx: ToolContext, paths: list[str]) -> list[str]:
    """What `git add` would read that is bigger than MORGUS_GIT_MAX_FILE_MB (lstat: a link is never followed)."""
    out = await _git(
        ctx, "ls-files", "-z", "--others", "--modified", "--exclude-standard", "--", *paths, action="git add"
    )
    limit = ctx.settings.git_max_file_mb * 1024 * 1024
    root = ctx.workspace

    def scan() -> list[str]:
        big = []
        for name in _names(out):
            try:
                st = os.lstat(root / name)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                big.append(f"{name} ({st.st_size // (1024 * 1024)} MB)")
        return big

    return await asyncio.to_thread(scan)


@tool("git_add", GitAddArgs, "Stage files for the next commit.")
async def git_add(ctx: ToolContext, args: GitAddArgs) -> str:
    _require_repo(ctx)
    for p in args.paths:
        resolve_in_workspace(ctx.workspace, p)
    big = await _too_large(ctx, args.paths)
    if big:
        raise ToolError(
            f"refusing to stage files larger than {ctx.settings.git_max_file_mb} MB: "
            f"{', '.join(big[:10])}; add them to .gitignore or leave them out"
        )
    await _git(ctx, "add", "--", *args.paths, action="git add")
    staged = _names(await _git(ctx, "diff", "--cached", "--name-only", "--no-renames", "-z", action="git add"))
    if not staged:
        return "nothing new to stage"
    more = f" and {len(staged) - NAMES_SHOWN} more" if len(staged) > NAMES_SHOWN else ""
    return f"staged {len(staged)} file(s): {', '.join(staged[:NAMES_SHOWN])}{more}"


def _author_env(raw: str) -> dict[str, str]:
    m = _AUTHOR_RE.match(raw)
    if not m:
        raise ToolError(f"MORGUS_GIT_AUTHOR must look like 'Name <email>', not {raw!r}")
    return {
        "GIT_AUTHOR_NAME": m["name"],
        "GIT_AUTHOR_EMAIL": m["email"],
        "GIT_COMMITTER_NAME": m["name"],
        "GIT_COMMITTER_EMAIL": m["email"],
    }


@tool("git_commit", GitCommitArgs, "Commit the staged changes with this message.")
async def git_commit(ctx: ToolContext, args: GitCommitArgs) -> str:
    _require_repo(ctx)
    staged = await run_git(
        ctx.settings,
        git_dir_for(ctx.settings, ctx.task_id),
        ctx.workspace,
        "diff",
        "--cached",
        "--quiet",
        what="git commit",
    )
    if staged.code == 0:
        return "nothing to commit: stage changes with git_add first"
    # --no-verify: no hook (they are off anyway); -F -: the message exactly as given, never through a shell
    await _git(
        ctx,
        "commit",
        "--quiet",
        "--no-verify",
        "--no-gpg-sign",
        "--cleanup=verbatim",
        "-F",
        "-",
        action="git commit",
        env=_author_env(ctx.settings.git_author),
        stdin=args.message.encode(),
    )
    sha = (await _git(ctx, "rev-parse", "HEAD", action="git commit")).strip()
    return f"committed {sha[:12]}: {args.message.splitlines()[0][:100] if args.message.strip() else ''}"


@tool("git_push", GitPushArgs, "Push a branch to the task's remote (the task's repo_url or MORGUS_GIT_REMOTE).")
async def git_push(ctx: ToolContext, args: GitPushArgs) -> ToolOutput:
    _require_repo(ctx)
    url = ctx.repo_url or ctx.settings.git_remote
    if not url:
        raise ToolError(
            "no remote is configured: the task has no repo_url and MORGUS_GIT_REMOTE is unset; "
            "skip the push and report where the code is"
        )
    token = ctx.settings.git_token
    target = check_push_url(url, ctx.settings)  # a local remote as its real path: no link followed later
    head = await run_git(
        ctx.settings,
        git_dir_for(ctx.settings, ctx.task_id),
        ctx.workspace,
        "rev-parse",
        "--verify",
        "--quiet",
        "HEAD",
        what="git push",
    )
    if head.code != 0:
        raise ToolError("nothing to push: there is no commit yet; use git_add and git_commit first")
    sha = head.stdout.decode().strip()
    # The URL itself, never a configured remote: `remote` only names it in the result.
    await _git(
        ctx,
        "push",
        "--no-verify",
        "--no-recurse-submodules",
        "--",
        target,
        f"HEAD:refs/heads/{args.branch}",
        action="git push",
        env=auth_env(target, token),
    )
    shown = scrub(url, token)
    return ToolOutput(
        content=f"pushed {sha[:12]} to {args.remote} ({shown}) branch {args.branch}",
        artifacts=[
            ArtifactRecord(
                type="repository",
                name=f"{Path(shown).name or shown} ({args.branch})",
                url=shown,
                metadata={"branch": args.branch, "commit": sha},
            )
        ],
    )
