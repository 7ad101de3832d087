"""Which tools this deployment cannot run, decided once per task so the workflow offers only tools that can work.

A model offered `search_web` on a machine with no network, or `cloudflare_deploy` with no credentials, spends its
turns on calls that can only fail (and a small one then plans around them). The answer is an activity result, so
the workflow stays deterministic and keeps it across continue-as-new.
"""

from __future__ import annotations

from temporalio import activity

from morgus.config import Settings
from morgus.contracts import TaskCapabilities, TaskCapabilitiesRequest


def unavailable_tools(settings: Settings, repo_url: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if settings.offline:
        out["search_web"] = out["fetch_url"] = "this worker has no network access (MORGUS_OFFLINE)"
    if not (settings.cloudflare_api_token and settings.cloudflare_account_id):
        out["cloudflare_deploy"] = "no Cloudflare credentials are configured"
    if not (repo_url or settings.git_remote):
        out["git_push"] = "the task has no git remote (repo_url)"
    if not settings.embedding_base_url:
        out["memory_search"] = "no embedding server is configured (MORGUS_EMBEDDING_BASE_URL)"
    return out


class CapabilityActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name="task_capabilities")
    async def task_capabilities(self, req: TaskCapabilitiesRequest) -> TaskCapabilities:
        return TaskCapabilities(unavailable=unavailable_tools(self.settings, req.repo_url))
