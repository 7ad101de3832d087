"""The checked line a completed task's summary ends with: what the tools reported, not what the model said.

A model's last reply can claim a deployment at a made-up URL or a commit it never made (a 1.5B model did both;
docs/eval.md). The workflow knows which tools succeeded, so the summary ends with that, in one line.
"""

from __future__ import annotations

from collections.abc import Collection

DEPLOY_TOOLS = ("deploy_local", "cloudflare_deploy")


def checked_facts(built: bool, succeeded: Collection[str]) -> str:
    """One line of facts from the tools' own reports: files changed, commands run, deployments, commits, pushes."""
    deployed = [t for t in DEPLOY_TOOLS if t in succeeded]
    parts = [
        "files written or changed" if built else "no file changed",
        "a command ran" if "shell_exec" in succeeded else "no command ran",
        f"deployed with {', '.join(deployed)} (its URL is in the task's artifacts)" if deployed else "nothing deployed",
        "committed to git" if "git_commit" in succeeded else "nothing committed",
    ]
    if "git_push" in succeeded:
        parts.append("pushed")
    return "Checked by Morgus from the tools' reports: " + "; ".join(parts) + "."
