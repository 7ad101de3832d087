"""git_init, git_add, git_commit, git_push: GitPython on the task's workspace.

The push token (MORGUS_GIT_TOKEN) reaches git only through the environment of the push itself (an HTTP
Authorization header set via GIT_CONFIG_*), never the remote URL, the repository config, a step, a log or an
error message: every text that leaves this module is scrubbed of it.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import git
from pydantic import BaseModel, ConfigDict, Field

from activities.tools.registry import ToolContext, ToolOutput, tool
from activities.tools.workspace import ToolError, resolve_in_workspace
from morgus.contracts import ArtifactRecord
from sandbox.base import give_to_sandbox_user

DEFAULT_AUTHOR = "Morgus <morgus@localhost>"
_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>@\s]+@[^<>\s]*)>\s*$")


class GitInitArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GitAddArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    paths: list[str] = Field(default_factory=lambda: ["."], description="Paths relative to the workspace.")


class GitCommitArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1, max_length=20_000, description="The commit message, exactly as it should read.")


class GitPushArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    remote: str = Field(default="origin", pattern=r"^[A-Za-z0-9._-]+$")
    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9._/-]+$")


def _token() -> str | None:
    return os.environ.get("MORGUS_GIT_TOKEN") or None


def scrub(text: str) -> str:
    token = _token()
    if token:
        text = text.replace(token, "***")
        text = text.replace(base64.b64encode(f"x-access-token:{token}".encode()).decode(), "***")
    return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)  # credentials embedded in a URL


def _author() -> git.Actor:
    raw = os.environ.get("MORGUS_GIT_AUTHOR", DEFAULT_AUTHOR)
    m = _AUTHOR_RE.match(raw)
    if not m:
        raise ToolError(f"MORGUS_GIT_AUTHOR must look like 'Name <email>', not {raw!r}")
    return git.Actor(m["name"], m["email"])


# The worker may run as root over files the sandbox user owns: tell git that is fine, without touching config.
_SAFE_ENV = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
             "GIT_TERMINAL_PROMPT": "0"}


def _repo(ctx: ToolContext) -> git.Repo:
    try:
        repo = git.Repo(ctx.workspace)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ToolError("the workspace is not a git repository yet; call git_init first") from None
    repo.git.update_environment(**_SAFE_ENV)
    return repo


def _settle(ctx: ToolContext) -> None:
    give_to_sandbox_user(ctx.workspace / ".git")


def _fail(action: str, e: git.GitCommandError) -> ToolError:
    detail = (e.stderr or e.stdout or str(e)).strip().removeprefix("stderr:").strip(" '")
    return ToolError(scrub(f"{action} failed: {detail}"))


@tool("git_init", GitInitArgs, "Create a git repository in the workspace (branch main). Safe to call twice.")
async def git_init(ctx: ToolContext, args: GitInitArgs) -> str:
    if (ctx.workspace / ".git").exists():
        return "the workspace is already a git repository"
    repo = git.Repo.init(ctx.workspace, initial_branch="main")
    repo.git.update_environment(**_SAFE_ENV)
    _settle(ctx)
    return f"initialised an empty git repository in the workspace (branch {repo.active_branch.name})"


@tool("git_add", GitAddArgs, "Stage files for the next commit.")
async def git_add(ctx: ToolContext, args: GitAddArgs) -> str:
    repo = _repo(ctx)
    for p in args.paths:
        resolve_in_workspace(ctx.workspace, p)
    try:
        repo.git.add("--", *args.paths)
    except git.GitCommandError as e:
        raise _fail("git add", e) from None
    _settle(ctx)
    staged = repo.git.diff("--cached", "--name-only").splitlines()
    return f"staged {len(staged)} file(s): {', '.join(staged[:50])}" if staged else "nothing new to stage"


@tool("git_commit", GitCommitArgs, "Commit the staged changes with this message.")
async def git_commit(ctx: ToolContext, args: GitCommitArgs) -> str:
    repo = _repo(ctx)
    if repo.head.is_valid() and not repo.index.diff("HEAD"):
        return "nothing to commit: stage changes with git_add first"
    author = _author()
    commit = repo.index.commit(args.message, author=author, committer=author)
    _settle(ctx)
    return f"committed {commit.hexsha[:12]}: {args.message.splitlines()[0][:100]}"


@tool("git_push", GitPushArgs, "Push a branch to the task's remote (the task's repo_url or MORGUS_GIT_REMOTE).")
async def git_push(ctx: ToolContext, args: GitPushArgs) -> ToolOutput:
    repo = _repo(ctx)
    url = ctx.repo_url or os.environ.get("MORGUS_GIT_REMOTE")
    if args.remote not in [r.name for r in repo.remotes]:
        if not url:
            raise ToolError("no remote is configured: the task has no repo_url and MORGUS_GIT_REMOTE is unset; "
                            "skip the push and report where the code is")
        repo.create_remote(args.remote, url)
    remote_url = repo.remote(args.remote).url
    env = dict(_SAFE_ENV)
    token = _token()
    if token and remote_url.startswith(("http://", "https://")):
        header = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update({"GIT_CONFIG_COUNT": "2", "GIT_CONFIG_KEY_1": "http.extraHeader",
                    "GIT_CONFIG_VALUE_1": f"Authorization: Basic {header}"})
    try:
        with repo.git.custom_environment(**env):
            repo.git.push(args.remote, f"HEAD:refs/heads/{args.branch}")
    except git.GitCommandError as e:
        raise _fail("git push", e) from None
    finally:
        _settle(ctx)
    shown = scrub(remote_url)
    return ToolOutput(
        content=f"pushed {repo.head.commit.hexsha[:12]} to {args.remote} ({shown}) branch {args.branch}",
        artifacts=[ArtifactRecord(type="repository", name=f"{Path(shown).name or shown} ({args.branch})", url=shown,
                                  metadata={"branch": args.branch, "commit": repo.head.commit.hexsha})],
    )
