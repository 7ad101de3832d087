"""deploy_local and cloudflare_deploy: publish a built directory and record a `deployment` artifact.

deploy_local copies the directory to MORGUS_HOME/sites/<task id>/, which Morgus serves over HTTP
(`morgus up` and `morgus demo` run the static server; MORGUS_SITES_URL is where it is reached).
cloudflare_deploy runs `wrangler pages deploy` in the task's sandbox; the Cloudflare credentials are passed to
that one command only and never appear in its output, a step or a log.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import uuid

from pydantic import BaseModel, ConfigDict, Field

from activities.tools.registry import ToolContext, ToolOutput, tool
from activities.tools.workspace import ToolError, resolve_in_workspace
from morgus.contracts import ArtifactRecord
from sandbox.output import CappedOutput

DEFAULT_SITES_URL = "http://127.0.0.1:8090"
_PAGES_URL = re.compile(r"https://[A-Za-z0-9.-]+\.pages\.dev\S*")


def sites_url() -> str:
    return os.environ.get("MORGUS_SITES_URL", DEFAULT_SITES_URL).rstrip("/")


class DeployLocalArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str = Field(description="The built site's folder, relative to the workspace (e.g. 'dist').")


class CloudflareDeployArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str = Field(description="The built site's folder, relative to the workspace.")
    project_name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,57}$", description="Cloudflare Pages project name.")


@tool("deploy_local", DeployLocalArgs, "Publish a built static site on this Morgus server; returns its URL.")
async def deploy_local(ctx: ToolContext, args: DeployLocalArgs) -> ToolOutput:
    source = resolve_in_workspace(ctx.workspace, args.directory)
    if not source.is_dir():
        raise ToolError(f"{args.directory!r} is not a folder in the workspace; build the site first")
    if not (source / "index.html").exists():
        raise ToolError(f"{args.directory!r} has no index.html; deploy the folder that holds the built site")
    sites = ctx.settings.home.resolve() / "sites"
    target = sites / ctx.task_id
    staging = sites / f".{ctx.task_id}.{uuid.uuid4().hex[:6]}"

    def publish() -> int:
        shutil.copytree(source, staging, symlinks=False, ignore=shutil.ignore_patterns(".git"))
        old = sites / f".{ctx.task_id}.old"
        if target.exists():
            target.rename(old)
        staging.rename(target)  # the site switches in one step
        shutil.rmtree(old, ignore_errors=True)
        return sum(1 for p in target.rglob("*") if p.is_file())

    sites.mkdir(parents=True, exist_ok=True)
    files = await asyncio.to_thread(publish)
    url = f"{sites_url()}/{ctx.task_id}/"
    return ToolOutput(
        content=f"deployed {files} file(s) from {args.directory} to {url}",
        artifacts=[ArtifactRecord(type="deployment", name=f"local: {args.directory}", url=url,
                                  path=str(target), metadata={"target": "local", "files": files})],
    )


@tool("cloudflare_deploy", CloudflareDeployArgs, "Deploy a built static site to Cloudflare Pages (needs credentials and network).", sandbox=True)
async def cloudflare_deploy(ctx: ToolContext, args: CloudflareDeployArgs) -> ToolOutput:
    token, account = os.environ.get("CLOUDFLARE_API_TOKEN"), os.environ.get("CLOUDFLARE_ACCOUNT_ID")
    if not token or not account:
        raise ToolError("Cloudflare credentials are not configured (CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID); "
                        "use deploy_local(directory) to publish the site on this Morgus server instead")
    resolve_in_workspace(ctx.workspace, args.directory)
    if ctx.sandbox is None or ctx.backend is None:
        raise ToolError("no sandbox is available for this task; the deploy was not run")
    if ctx.sandbox.network != "egress":
        raise ToolError("deploying to Cloudflare needs network: start the task with sandbox.network = 'egress', "
                        "or use deploy_local(directory)")
    sink = CappedOutput()
    command = f"wrangler pages deploy {args.directory!r} --project-name {args.project_name} --branch main"
    result = await asyncio.to_thread(ctx.backend.exec, ctx.sandbox.name, command, timeout_s=600,
                                     env={"CLOUDFLARE_API_TOKEN": token, "CLOUDFLARE_ACCOUNT_ID": account}, sink=sink)
    output = (sink.stdout() + "\n" + sink.stderr()).replace(token, "***").replace(account, "***")
    if result.exit_code != 0:
        raise ToolError(f"wrangler pages deploy failed (exit {result.exit_code}):\n{output[-4000:]}")
    match = _PAGES_URL.search(output)
    url = match.group(0) if match else f"https://{args.project_name}.pages.dev"
    return ToolOutput(
        content=f"deployed {args.directory} to {url}",
        artifacts=[ArtifactRecord(type="deployment", name=f"cloudflare: {args.project_name}", url=url,
                                  metadata={"target": "cloudflare", "project": args.project_name})],
    )
