"""What each phase is for and which tools it may use. Data, not code: change a phase here."""

from __future__ import annotations

from dataclasses import dataclass

from morgus.contracts import Phase


@dataclass(frozen=True)
class PhaseSpec:
    phase: Phase
    purpose: str
    tools: tuple[str, ...]

    def opening_message(self, tools: tuple[str, ...] | None = None) -> str:
        return (
            f"Phase: {self.phase.value}\n{self.purpose}\n"
            f"Tools available in this phase: {', '.join(self.tools if tools is None else tools) or 'none'}. "
            "When this phase's work is done, reply with a short summary and no tool call."
        )


_FILES = ("file_read", "file_write", "file_list")
_TALK = ("notify_user", "ask_user")
_GIT = ("git_init", "git_add", "git_commit")

PHASES: dict[Phase, PhaseSpec] = {
    Phase.RESEARCH: PhaseSpec(
        Phase.RESEARCH,
        "Research what the task needs: requirements, constraints, prior art. Search and read the web where it helps. "
        "Ask the user only what you cannot infer.",
        ("search_web", "fetch_url", "file_read", "file_list", *_TALK),
    ),
    Phase.PLAN: PhaseSpec(
        Phase.PLAN,
        "Decide a concrete implementation plan: files, steps, how it will be tested and shipped. Reply with the plan.",
        _TALK,
    ),
    Phase.BUILD: PhaseSpec(
        Phase.BUILD,
        "Implement the plan: write the project's files in the workspace, install and build, and commit to git. "
        "Fix what you find wrong.",
        (*_FILES, "shell_exec", *_GIT, *_TALK),
    ),
    Phase.EXECUTE: PhaseSpec(
        Phase.EXECUTE,
        "Run and test the result, then deploy it: to Cloudflare Pages when credentials are configured, "
        "otherwise with deploy_local. Report the URL.",
        ("file_read", "file_list", "shell_exec", "deploy_local", "cloudflare_deploy", *_TALK),
    ),
    Phase.FINALIZE: PhaseSpec(
        Phase.FINALIZE,
        "Finish: commit the final state, push it if a remote is configured, and notify the user with what was "
        "built, where it is deployed, and anything they must know.",
        (*_GIT, "git_push", "notify_user"),
    ),
}

# Tool lists decide what the workflow runs or rejects, so changing them changes workflow behaviour. Tasks that
# started before a change keep the lists they started with (workflow.patched); add an entry here on each change.
PHASE_TOOLS_PATCH = "phase-tools-v2"
LEGACY_PHASE_TOOLS: dict[Phase, tuple[str, ...]] = {
    Phase.RESEARCH: ("file_read", "file_list", *_TALK),
    Phase.PLAN: (*_FILES, *_TALK),
    Phase.BUILD: (*_FILES, "shell_exec", *_TALK),
    Phase.EXECUTE: (*_FILES, "shell_exec", *_TALK),
    Phase.FINALIZE: ("file_read", "file_list", "notify_user"),
}


def phase_tools(phase: Phase, current: bool) -> tuple[str, ...]:
    return PHASES[phase].tools if current else LEGACY_PHASE_TOOLS[phase]


ALL_TOOLS: frozenset[str] = frozenset(t for spec in PHASES.values() for t in spec.tools)
# Tools that run in the task's sandbox, on the worker that owns it (host-affinity task queue).
SANDBOX_TOOLS: frozenset[str] = frozenset({"shell_exec", "cloudflare_deploy"})

SYSTEM_PROMPT = (
    "You are Morgus, an autonomous software engineer. You work through the phases RESEARCH, PLAN, BUILD, "
    "EXECUTE and FINALIZE, one at a time, using only the tools offered. Paths are relative to the task's "
    "workspace. Be concise; when a phase is done, answer without calling a tool."
)


def system_message(title: str, description: str) -> str:
    return f"{SYSTEM_PROMPT}\n\nTask: {title}\n\n{description}"
