"""What each phase is for and which tools it may use. Data, not code: change a phase here."""

from __future__ import annotations

from dataclasses import dataclass

from morgus.contracts import PHASE_ORDER, Phase


@dataclass(frozen=True)
class PhaseSpec:
    phase: Phase
    purpose: str
    tools: tuple[str, ...]
    # how the phase ends: said in its opening, because a model reads "reply with a summary" as the work itself
    finish: str = "When you are done, reply without a tool call: that reply is this phase's result."
    # what the phase must show before a reply without a tool call may end it (None: nothing), and the one
    # sentence that tells the model it has not shown it yet
    needs_work: str | None = None
    nudge: str = ""

    def opening_message(self, tools: tuple[str, ...] | None = None, *, finish: bool = True) -> str:
        """`finish=False` leaves out how the phase ends, said once its work is shown (finish-after-work-v1)."""
        return (
            f"Phase: {self.phase.value}\n{self.purpose}\n"
            f"Tools for this phase: {', '.join(self.tools if tools is None else tools) or 'none'}."
            + (f"\n{self.finish}" if finish else "")
        )


_FILES = ("file_read", "file_write", "file_list")
_TALK = ("notify_user", "ask_user")
_GIT = ("git_init", "git_add", "git_commit")

PHASES: dict[Phase, PhaseSpec] = {
    Phase.RESEARCH: PhaseSpec(
        Phase.RESEARCH,
        "Find out what the task needs: requirements and constraints. Read the workspace or the web with tools where "
        "it helps; ask the user only what you cannot infer. If nothing needs researching, say so in one line.",
        ("search_web", "fetch_url", "file_read", "file_list", *_TALK, "memory_search"),
        finish="When you know enough, reply without a tool call with a short summary of what you found.",
    ),
    Phase.PLAN: PhaseSpec(
        Phase.PLAN,
        "Decide a concrete plan: the files to write, the commands that test it, how it is deployed.",
        (*_TALK, "memory_search"),
        finish="Reply with the plan, without a tool call. The files are written in the next phase, not now.",
    ),
    Phase.BUILD: PhaseSpec(
        Phase.BUILD,
        # "Start now: call file_write …" names the first call: a small model told only what the phase is for
        # answers with a report of the work ("File written: hello.txt") instead of doing it (measured with a
        # 1.5B model: 0/3 tool calls with the general wording, 4/4 with this one; docs/eval.md)
        # git is FINALIZE's: named here, it sent a small model into `git init`/`git config` via shell_exec
        "Implement the plan by calling tools. Start now: call file_write with the path and the full content of "
        "the first file of the plan, then the next. Use shell_exec only to install or build what the plan needs. "
        "Fix what you find wrong.",
        (*_FILES, "shell_exec", *_GIT, *_TALK),
        # how to end is said as an action with its content: "reply without a tool call only after …" left a 1.5B
        # model calling tools forever once its file was written (0/4 ends); this wording 2/4 (docs/eval.md)
        finish="When every file is written, end this phase: reply without a tool call, in one line saying which "
        "files you wrote.",
        needs_work="file",
        # said after a reply without a tool call: the reply is named as what it was, because a small model asked
        # only to "call file_write now" repeated its report of the work (0/9); this wording: 6/6 calls
        nudge="Your last reply called no tool, so nothing was done: no file exists yet, and one exists only once "
        "file_write is called. Reply now with a file_write call (the path and the full content of the "
        "first file of the plan), not with text.",
    ),
    Phase.EXECUTE: PhaseSpec(
        Phase.EXECUTE,
        "Run and test the result by calling tools. Start now: call shell_exec with the command that runs the "
        "tests or the program; then deploy it with a deploy tool and report the URL the tool returns.",
        ("file_read", "file_list", "shell_exec", "deploy_local", "cloudflare_deploy", *_TALK),
        finish="When it has run (and been deployed, if the task asks for it), end this phase: reply without a tool "
        "call, in one line saying what ran and any URL a tool returned.",
        needs_work="test run or deployment",
        # a 1.5B model answers EXECUTE's opening with a made-up run and URL ("Deploying the site... URL:
        # http://localhost:8080"); told only "nothing has run yet … a shell_exec call", it ran made-up test scripts
        # (0/4 deploy_local calls); this wording, which says the URL is not real and names deploy_local with its
        # argument: 3/4 deploy_local("site"), 4/4 tool calls (docs/eval.md)
        nudge="Nothing ran and nothing was deployed: your reply called no tool, so any result or URL in it is not "
        "real. Reply now with only a tool call: deploy_local with the folder that holds the site (for a website), "
        "or shell_exec with the command that runs the tests or the program.",
    ),
    Phase.FINALIZE: PhaseSpec(
        Phase.FINALIZE,
        "Commit and report by calling tools. Start now: call git_init, then git_add and git_commit with a message "
        "that says what was built; git_push if a remote is offered. Then call notify_user with what was built, "
        "where it is deployed (only a URL a tool returned), and anything the user must know.",
        (*_GIT, "git_push", "notify_user"),
        finish="Then end the task: reply without a tool call, in one line.",
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
# Every tool, in one stable order (phase by phase, first appearance). Under PHASE_WORK_PATCH the model is offered
# this same list in every phase (minus what cannot work here) and the workflow refuses a call the phase does not
# allow: the tool schemas are part of the prompt's prefix, so one list keeps the provider's prefix cache valid
# across phases instead of re-reading the conversation at every phase start.
TOOL_ORDER: tuple[str, ...] = tuple(dict.fromkeys(t for p in PHASE_ORDER for t in PHASES[p].tools))

# Phase work, bounded phases, cycle detection, tools that cannot work here left out (morgus/workflows/task.py).
PHASE_WORK_PATCH = "phase-work-v1"


def offered_tools(unavailable: frozenset[str] | set[str]) -> tuple[str, ...]:
    return tuple(t for t in TOOL_ORDER if t not in unavailable)


def allowed_tools(phase: Phase, unavailable: frozenset[str] | set[str]) -> tuple[str, ...]:
    return tuple(t for t in PHASES[phase].tools if t not in unavailable)


# Tools that run in the task's sandbox, on the worker that owns it (host-affinity task queue).
SANDBOX_TOOLS: frozenset[str] = frozenset({"shell_exec", "cloudflare_deploy"})

SYSTEM_PROMPT = (
    "You are Morgus, an autonomous software engineer. You work through the phases RESEARCH, PLAN, BUILD, "
    "EXECUTE and FINALIZE, one at a time, using only the tools offered. Paths are relative to the task's "
    "workspace. Do the work by calling tools; answer without a tool call only when the phase's work is done. "
    "Never claim a file, a test run or a deployment that a tool did not report."
)


def system_message(title: str, description: str) -> str:
    return f"{SYSTEM_PROMPT}\n\nTask: {title}\n\n{description}"
