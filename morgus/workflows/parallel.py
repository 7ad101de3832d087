"""Which calls of one model turn may run at the same time (parallel-tools-v1).

A model often asks for several things in one turn (five pages to read, three files to look at). Calls that share
nothing run concurrently; a call that could see or change what an earlier call of the turn touches waits for it, so
the turn behaves as if its calls had run one after another in the order the model wrote them:
- web and memory reads (`search_web`, `fetch_url`, `memory_search`) touch nothing of the task's;
- `notify_user` posts to the user's webhook (MORGUS_NOTIFY_WEBHOOK): notifications keep their order there ("tests
  pass" must not arrive before "tests started"), alongside every other call;
- `file_read`/`file_list` read the workspace: they run together, but after an earlier call that may change it;
- everything else (`file_write`, `shell_exec` — all sandbox calls keep their order —, git, deployments, and any
  tool this module does not know) may change the workspace, so it waits for every earlier workspace call and
  every later workspace call waits for it;
- an MCP tool touches its server's state, nothing of the task's: one marked read-only reads it (it runs alongside
  other reads of that server, but after an earlier call that may change it: a read-only lookup written after an
  update must see the update), another may change it, so it keeps its order with every call to that server.
The results go back to the model in the order of the calls whatever order they finish in (the ledger gives each
call its slots before any starts). A call's extra steps (notify_user's NOTIFICATION) come back through the
workflow's history to be written after the turn's results; a turn whose notifications could carry more text than
DEFERRED_TEXT_MAX runs its calls one by one (each notification written by its own activity), because that text
all goes into the next LLM request's payload, and 110 notifications of 20,000 characters broke Temporal's 2 MB
payload limit (the task stuck, its workflow task failing forever). Pure and deterministic: tested without a server (tests/test_parallel_tools.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

WORKSPACE = "workspace"
# Touch nothing that another call of the turn could see or change.
SHARES_NOTHING: frozenset[str] = frozenset({"search_web", "fetch_url", "memory_search"})
USER = "user"  # the user's notification channel
READS_WORKSPACE: frozenset[str] = frozenset({"file_read", "file_list"})

# notify_user's message is at most this long (NotifyUserArgs), whatever the length of the call's arguments
NOTIFY_TEXT_MAX = 20_000
# the text a concurrent turn may defer: a few long notifications, far below the 2 MB payload limit even escaped
DEFERRED_TEXT_MAX = 100_000

# what a call touches: resource -> whether it may change it
Touches = Mapping[str, bool]


def touches(tool: str, mcp_server: str | None = None, mcp_read_only: bool = False) -> Touches:
    """What `tool` touches. `mcp_server` is set for an MCP tool (with its read-only hint)."""
    if mcp_server is not None:
        return {f"mcp:{mcp_server}": not mcp_read_only}
    if tool in SHARES_NOTHING:
        return {}
    if tool == "notify_user":
        return {USER: True}
    if tool in READS_WORKSPACE:
        return {WORKSPACE: False}
    return {WORKSPACE: True}


def conflict(a: Touches, b: Touches) -> bool:
    """Two calls conflict when they touch the same thing and at least one of them may change it."""
    return any(r in b and (writes or b[r]) for r, writes in a.items())


def waits_for(calls: list[Touches]) -> list[list[int]]:
    """For each call, the earlier calls of the turn it must wait for (indexes, ascending)."""
    return [[i for i in range(j) if conflict(calls[i], calls[j])] for j in range(len(calls))]


def defers_too_much(calls: Sequence[tuple[str, str | None]]) -> bool:
    """Whether the turn's calls (name, arguments; None: too long to inline) could defer more than DEFERRED_TEXT_MAX
    characters of notification text."""
    deferred = sum(
        NOTIFY_TEXT_MAX if args is None else min(len(args), NOTIFY_TEXT_MAX)
        for name, args in calls
        if name == "notify_user"
    )
    return deferred > DEFERRED_TEXT_MAX
