"""deploy_local and cloudflare_deploy: publish a built directory and record a `deployment` artifact.

deploy_local copies the directory to MORGUS_HOME/sites/<task id>/, which Morgus serves over HTTP
(`morgus up` and `morgus demo` run the static server; MORGUS_SITES_URL, settings.sites_url, is where it is reached). The directory was
written by sandboxed code: only its regular files and folders are copied, walked by descriptor without following
a link (safe_fs); links, FIFOs, sockets, devices and hard-linked files are skipped and named in the result.
cloudflare_deploy runs `wrangler pages deploy` in the task's sandbox; the Cloudflare credentials are passed to
that one command only and never appear in its output, a step or a log. The directory and project name reach
the sandbox's bash only through shlex.quote, so a name with quotes, `$(...)` or a leading '-' stays one argument.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import stat
import uuid
from pathlib import Path

from pydantic import Field

from morgus.activities.tools import safe_fs
from morgus.activities.tools.registry import ToolArgs, ToolContext, ToolOutput, tool
from morgus.activities.tools.workspace import ToolError
from morgus.config import Settings
from morgus.contracts import ArtifactRecord
from morgus.sandbox.output import CappedOutput

DEFAULT_SITES_URL = "http://127.0.0.1:8090"
MAX_SITE_FILES = 10_000
MAX_SITE_BYTES = 200_000_000
SHOW_SKIPPED = 20
# A path of plain URL characters only (no backslash, quote or space), and the URL must end there.
_URL_PATH = r"(?:/[A-Za-z0-9._~%/?#&=+-]*)?(?!\S)"


def pages_url(output: str, project: str) -> str:
    """The deployment's URL as wrangler prints it, if it is one of `project`'s own (`https://<hash>.<project>.pages.dev`
    or `https://<project>.pages.dev`), else the project's. wrangler runs in the sandbox, which can forge its output:
    `https://x.pages.dev@evil.example/` (userinfo), `…pages.dev.evil.example` or another project must never become
    the deployment artifact the console frames and links."""
    own = re.compile(rf"https://(?:[a-z0-9-]+\.)?{re.escape(project)}\.pages\.dev{_URL_PATH}")
    match = own.search(output)
    return match.group(0) if match else f"https://{project}.pages.dev"


def sites_url(settings: Settings) -> str:
    return (settings.sites_url or DEFAULT_SITES_URL).rstrip("/")


class DeployLocalArgs(ToolArgs):
    directory: str = Field(description="The built site's folder, relative to the workspace (e.g. 'dist').")


class CloudflareDeployArgs(ToolArgs):
    directory: str = Field(description="The built site's folder, relative to the workspace.")
    project_name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,57}$", description="Cloudflare Pages project name.")


def _site_folders_hint(workspace: Path) -> str:
    """Which folders could be deployed: a 1.5B model asked to deploy `dist` (no such folder), read "build the site
    first" and ended the phase with its site sitting in `site/`. Names come from the untrusted workspace: escaped
    (safe_fs.show), at most five, from a bounded walk that follows no link."""
    try:
        entries, _ = safe_fs.walk(workspace, ".", max_entries=2000, skip_dirs=frozenset({".git", "node_modules"}))
    except (ToolError, OSError):
        return "write the site's files first"
    folders = sorted(
        {
            e.rel.rpartition("/")[0] or "."
            for e in entries
            if stat.S_ISREG(e.mode) and e.rel.rpartition("/")[2] == "index.html"
        }
    )
    if not folders:
        return "no folder holds an index.html yet: write the site's files first"
    return f"folders with an index.html: {', '.join(folders[:5])} (deploy one of them)"


def _publish(workspace: Path, directory: str, sites: Path, task_id: str) -> tuple[Path, safe_fs.CopyReport]:
    """Copy the regular files and folders of `directory` into a fresh staging folder, then switch the site to it."""
    parts = safe_fs.split_rel(directory)
    shown = safe_fs.show(directory)
    try:
        src = safe_fs.open_folder(workspace, parts)
    except ToolError as e:
        if "does not exist" in str(e):
            raise ToolError(f"{shown!r} is not a folder in the workspace; {_site_folders_hint(workspace)}") from None
        raise
    with safe_fs.closing_fd(src):
        try:
            index, _ = safe_fs.open_regular_at(src, "index.html", f"{shown}/index.html")
        except ToolError as e:
            if "does not exist" in str(e):
                raise ToolError(f"{shown!r} has no index.html; deploy the folder that holds the built site") from None
            raise ToolError(f"{e}; the site needs a regular index.html") from None
        os.close(index)
        sites.mkdir(parents=True, exist_ok=True)
        staging = sites / f".{task_id}.{uuid.uuid4().hex[:6]}"
        staging.mkdir(mode=0o755)
        try:
            with safe_fs.closing_fd(os.open(staging, safe_fs.PATH_DIR)) as dst:
                report = safe_fs.copy_regular_tree(
                    src, dst, max_files=MAX_SITE_FILES, max_bytes=MAX_SITE_BYTES, skip_dirs=frozenset({".git"})
                )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    target = sites / task_id
    old = sites / f".{task_id}.old"
    if target.exists():
        target.rename(old)
    staging.rename(target)  # the site switches in one step
    shutil.rmtree(old, ignore_errors=True)
    return target, report


def _skipped(report: safe_fs.CopyReport) -> str:
    if not report.skipped:
        return ""
    shown = ", ".join(report.skipped[:SHOW_SKIPPED])
    more = f", and {len(report.skipped) - SHOW_SKIPPED} more" if len(report.skipped) > SHOW_SKIPPED else ""
    return f"; skipped {len(report.skipped)} (only regular files and folders are published): {shown}{more}"


@tool("deploy_local", DeployLocalArgs, "Publish a built static site on this Morgus server; returns its URL.")
async def deploy_local(ctx: ToolContext, args: DeployLocalArgs) -> ToolOutput:
    workspace = ctx.settings.workspace_for(ctx.task_id)
    sites = ctx.settings.home.resolve() / "sites"
    with safe_fs.sentences(safe_fs.show(args.directory)):
        target, report = await asyncio.to_thread(_publish, workspace, args.directory, sites, ctx.task_id)
    url = f"{sites_url(ctx.settings)}/{ctx.task_id}/"
    directory = safe_fs.show(args.directory)
    return ToolOutput(
        content=f"deployed {report.files} file(s) from {directory} to {url}{_skipped(report)}",
        artifacts=[
            ArtifactRecord(
                type="deployment",
                name=f"local: {directory}",
                url=url,
                path=str(target),
                metadata={
                    "target": "local",
                    "files": report.files,
                    "bytes": report.bytes,
                    "skipped": len(report.skipped),
                },
            )
        ],
    )


@tool(
    "cloudflare_deploy",
    CloudflareDeployArgs,
    "Deploy a built static site to Cloudflare Pages (needs credentials and network).",
    sandbox=True,
)
async def cloudflare_deploy(ctx: ToolContext, args: CloudflareDeployArgs) -> ToolOutput:
    token, account = ctx.settings.cloudflare_api_token, ctx.settings.cloudflare_account_id
    if not token or not account:
        raise ToolError(
            "Cloudflare credentials are not configured (CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID); "
            "use deploy_local(directory) to publish the site on this Morgus server instead"
        )
    # A lexical check only: wrangler runs inside the sandbox, so the folder (links included) is resolved there and
    # can reach nothing the sandbox cannot; the host's copy of the workspace is never touched here.
    directory = "./" + "/".join(safe_fs.split_rel(args.directory))  # "./": a name starting with '-' is no option
    if ctx.sandbox is None or ctx.backend is None:
        raise ToolError("no sandbox is available for this task; the deploy was not run")
    if ctx.sandbox.network != "egress":
        raise ToolError(
            "deploying to Cloudflare needs network: start the task with sandbox.network = 'egress', "
            "or use deploy_local(directory)"
        )
    sink = CappedOutput()
    command = shlex.join(
        ["wrangler", "pages", "deploy", directory, "--project-name", args.project_name, "--branch", "main"]
    )
    result = await asyncio.to_thread(
        ctx.backend.exec,
        ctx.sandbox.name,
        command,
        timeout_s=600,
        env={"CLOUDFLARE_API_TOKEN": token, "CLOUDFLARE_ACCOUNT_ID": account},
        sink=sink,
    )
    output = (sink.stdout() + "\n" + sink.stderr()).replace(token, "***").replace(account, "***")
    if result.exit_code != 0:
        raise ToolError(f"wrangler pages deploy failed (exit {result.exit_code}):\n{output[-4000:]}")
    url = pages_url(output, args.project_name)
    return ToolOutput(
        content=f"deployed {safe_fs.show(args.directory)} to {url}",
        artifacts=[
            ArtifactRecord(
                type="deployment",
                name=f"cloudflare: {args.project_name}",
                url=url,
                metadata={"target": "cloudflare", "project": args.project_name},
            )
        ],
    )
