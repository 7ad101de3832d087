"""What the agent changed, through the API: the diff each `file_write` made (kept with its step) and the task's git
log (read from the host-owned repository with the hardened runner).

One scripted task (real Temporal, Postgres, worker, scripted LLM) writes a file, rewrites it and commits; the API
must return both diffs and the commit. A work tree rigged with hooks and command-running config must never fire
when the log is read. The diff's hostile inputs (NUL, terminal escapes, bidi, a 10 MB old file, a million lines,
a link or a FIFO at the path) are bounded in size, and are checked without a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

from morgus.activities.tools import file_diff
from tests.conftest import start, task_id_of
from tests.helpers.api import served
from tests.helpers.gitrepos import marker_dir, markers
from tests.helpers.tools import call, call_output, ctx_for

V1 = "<!doctype html>\n<h1>Crumb</h1>\n<p>Open 8-4</p>\n"
V2 = "<!doctype html>\n<h1>Crumb &amp; Co.</h1>\n<p>Open 8-4</p>\n"


def _plant_worktree_traps(ws: Path, mark: Path) -> None:
    """A .git the sandbox could leave in the work tree: hooks and config that each leave a marker when git runs
    them, and attributes naming a textconv driver."""
    git = ws / ".git"
    (git / "hooks").mkdir(parents=True)
    for hook in ("post-checkout", "pre-commit", "post-index-change", "reference-transaction", "pre-auto-gc"):
        h = git / "hooks" / hook
        h.write_text(f"#!/bin/sh\ntouch {mark}/hook-{hook}\n")
        h.chmod(0o755)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "objects").mkdir()
    (git / "refs").mkdir()
    (git / "config").write_text(
        "[core]\n"
        f"\tfsmonitor = touch {mark}/fsmonitor; false\n"
        f"\tpager = touch {mark}/pager\n"
        f"\thooksPath = {git / 'hooks'}\n"
        f'[diff "x"]\n\ttextconv = touch {mark}/textconv; cat\n'
        f"[log]\n\tshowSignature = true\n[gpg]\n\tprogram = touch {mark}/gpg\n"
    )
    (ws / ".gitattributes").write_text("* diff=x\n")
    (ws / ".mailmap").write_text("Evil <evil@example> Morgus <morgus@localhost>\n")


async def test_a_task_writes_twice_and_commits_the_api_shows_both_diffs_and_the_log(
    client: Any, store: Any, settings: Any, worker: Any, llm: Any, tmp_path: Path
) -> None:
    marker = llm.add(
        "diff-gitlog",
        [
            {"content": "Research done."},
            {"content": "Plan: one page."},
            {
                "content": None,
                "tool_calls": [{"name": "file_write", "arguments": {"path": "site/index.html", "content": V1}}],
            },
            {
                "content": None,
                "tool_calls": [{"name": "file_write", "arguments": {"path": "site/index.html", "content": V2}}],
            },
            {"content": "Built."},
            {"content": "Executed."},
            {
                "content": None,
                "tool_calls": [
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {"name": "git_commit", "arguments": {"message": "Add the bakery page\n\nName and hours."}},
                ],
            },
            {"content": "Committed."},
        ],
    )
    handle = await start(client, settings, marker, title="Diffs and log")
    assert (await handle.result()).status == "completed"
    tid = task_id_of(handle)
    ws = settings.workspace_for(tid)
    mark = marker_dir(tmp_path)
    _plant_worktree_traps(ws, mark)
    # control: the planted config is live for a git that opens the work tree's .git (as a naive host tool would)
    subprocess.run(["git", "status"], cwd=ws, capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "fsmonitor" in markers(mark)
    for name in markers(mark):
        (mark / name).unlink()

    async with served(settings, client, store) as http:
        steps = (await http.get(f"/api/tasks/{tid}/steps")).json()["steps"]
        writes = [s for s in steps if s["type"] == "TOOL_RESULT" and s["metadata"].get("tool") == "file_write"]
        assert len(writes) == 2
        first, second = (w["metadata"]["diff"] for w in writes)
        assert first["new_file"] is True and first["added"] == 3 and first["removed"] == 0
        assert first["text"].splitlines()[:3] == ["--- /dev/null", "+++ b/site/index.html", "@@ -0,0 +1,3 @@"]
        assert second["new_file"] is False and (second["added"], second["removed"]) == (1, 1)
        assert "-<h1>Crumb</h1>" in second["text"].splitlines()
        assert "+<h1>Crumb &amp; Co.</h1>" in second["text"].splitlines()
        assert " <p>Open 8-4</p>" in second["text"].splitlines()  # context
        # the model's result text is what it was: the diff is for the console only
        assert writes[1]["content"].startswith("Wrote ") and "@@" not in writes[1]["content"]
        messages = await store.load_messages(tid, 10_000)
        assert not any("@@ -" in (m.content or "") for m in messages)

        resp = await http.get(f"/api/tasks/{tid}/git/log")
        assert resp.status_code == 200, resp.text
        log = resp.json()
        assert log["has_repository"] is True and log["truncated"] is False
        [commit] = log["commits"]
        assert commit["message"] == "Add the bakery page\n\nName and hours."
        assert commit["author"] == "Morgus" and commit["email"] == "morgus@localhost"  # no planted .mailmap
        assert len(commit["sha"]) == 40 and commit["files_total"] == 1
        assert commit["files"] == [{"status": "A", "path": "site/index.html"}]
        assert markers(mark) == []  # no planted hook or config ran while the log was read

        listed = (await http.get("/api/tasks", params={"q": "Diffs and log"})).json()["tasks"]
        assert [t["price_known"] for t in listed if t["id"] == tid] == [False]  # the scripted model has no price

        other = uuid.uuid4()
        assert (await http.get(f"/api/tasks/{other}/git/log")).status_code == 404
    # a task with no repository (yet): an empty log, not an error
    from morgus.app.git_log import read_log

    fresh = ctx_for(settings)
    assert (await read_log(settings, fresh.task_id, fresh.workspace)).has_repository is False


# ---------------------------------------------------------------- the diff's hostile inputs (no server)


def _size(diff: dict[str, Any]) -> int:
    return len(json.dumps(diff))


async def test_hostile_old_files_give_bounded_diffs(settings: Any) -> None:
    ctx = ctx_for(settings)
    ws = ctx.workspace

    # 10 MB left by a sandboxed command: not diffed, its real size reported, the metadata small
    (ws / "big.log").write_bytes(b"x" * 10_000_000)
    out = await call_output("file_write", ctx, path="big.log", content="small now\n")
    d = out.metadata["diff"]
    assert d["text"] is None and d["old_bytes"] == 10_000_000 and "too large to diff" in d["note"]
    assert _size(d) < 1000

    # a million lines (under the byte cap): linear trimming, the region shown removed-then-added and cut
    (ws / "lines.txt").write_bytes(b"\n" * 1_000_000)
    out = await call_output("file_write", ctx, path="lines.txt", content="\n" * 10 + "changed\n")
    d = out.metadata["diff"]
    assert d["removed"] == 1_000_000 - 10 and d["added"] == 1 and d["truncated"] is True
    assert _size(d) < file_diff.MAX_DIFF_CHARS * 2

    # one small change in a large file: only that hunk
    (ws / "many.txt").write_text("".join(f"line {i}\n" for i in range(50_000)))
    new = "".join(f"line {i}\n" if i != 25_000 else "LINE\n" for i in range(50_000))
    d = (await call_output("file_write", ctx, path="many.txt", content=new)).metadata["diff"]
    assert (d["added"], d["removed"], d["truncated"]) == (1, 1, False)
    assert "@@ -24998,7 +24998,7 @@" in d["text"] and "-line 25000" in d["text"]

    # NUL bytes: binary, never shown
    (ws / "blob").write_bytes(b"PK\x03\x04\x00\x00secret")
    d = (await call_output("file_write", ctx, path="blob", content="text\n")).metadata["diff"]
    assert d["binary"] is True and d["text"] is None and d["note"] == "binary file changed"

    # terminal escapes, bidi overrides, a carriage return: visible escapes, never the raw characters
    evil = "\x1b[2J\x1b]0;owned\x07 a\u202eb\rc\n"
    d = (await call_output("file_write", ctx, path="esc.txt", content=evil)).metadata["diff"]
    assert "+\\x1b[2J\\x1b]0;owned\\x07 a\\u202eb\\x0dc" in d["text"].splitlines()
    assert not any(c in d["text"] for c in ("\x1b", "\x07", "\u202e", "\r"))

    # a path name with a newline cannot forge a diff header line
    d = (await call_output("file_write", ctx, path="a\n+++ b/x", content="y\n")).metadata["diff"]
    assert d["text"].splitlines()[1] == "+++ b/a\\n+++ b/x"

    # one 900,000-character line: cut to MAX_LINE_CHARS
    d = (await call_output("file_write", ctx, path="min.js", content="x" * 900_000)).metadata["diff"]
    assert f"({900_000 - file_diff.MAX_LINE_CHARS} more characters)" in d["text"] and _size(d) < 2000

    # a link to a host file and a FIFO at the path: never read (the FIFO would block), replaced by the write
    (ws / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(ws / "pipe")
    for name in ("passwd", "pipe"):
        d = (await call_output("file_write", ctx, path=name, content="mine\n")).metadata["diff"]
        assert d["new_file"] is False and d["text"] is not None and "root:" not in d["text"]
        assert "not a regular file" in d["note"]
    assert (ws / "passwd").read_text() == "mine\n" and not (ws / "passwd").is_symlink()

    # the same content again: no change
    await call("file_write", ctx, path="same.txt", content="a\n")
    d = (await call_output("file_write", ctx, path="same.txt", content="a\n")).metadata["diff"]
    assert d["text"] is None and d["note"].startswith("no change")


def test_a_many_hunk_diff_stops_at_its_caps() -> None:
    # matched line by line (under MAX_MATCH_LINES): 400 hunks, more lines than the diff keeps, all counted
    old = "".join(f"{i}\n" for i in range(2_800)).encode()
    new = "".join(f"{i}\n" if i % 7 else f"{i}!\n" for i in range(2_800)).encode()
    d = file_diff.write_diff("n.txt", old, new)
    assert d["truncated"] is True and (d["added"], d["removed"]) == (400, 400)
    # past it, the changed region is shown removed-then-added, still counted in full
    d = file_diff.write_diff("n.txt", old * 2, new * 2)
    assert d["truncated"] is True and (d["added"], d["removed"]) == (5_600 - 6, 5_600 - 6)
    assert len(d["text"]) <= file_diff.MAX_DIFF_CHARS and d["text"].count("\n") < file_diff.MAX_DIFF_LINES


def test_a_price_is_known_only_when_every_model_a_task_uses_has_one(tmp_path: Path) -> None:
    from morgus.models import price_known

    assert price_known(None, "gpt-4o", None, None) is True
    assert price_known(None, "gpt-4o", "my-coder", None) is False  # BUILD and EXECUTE use an unpriced model
    assert price_known("my-coder", "gpt-4o", None, None) is False
    free = tmp_path / "models.json"
    free.write_text(json.dumps({"models": {"my-coder": {"input_per_mtok": 0, "output_per_mtok": 0}}}))
    assert price_known(None, "gpt-4o", "my-coder", str(free)) is True  # a free local model: $0 is its cost
