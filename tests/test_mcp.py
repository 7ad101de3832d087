"""MCP servers' tools end to end, against real MCP servers written with the `mcp` SDK (tests/mcp_servers/): a stdio
one the worker starts per call and a streamable-HTTP one on loopback. One scripted task covers the schemas offered
in the configured phases only, calls reaching each server (its own request log), a 10 MB reply capped, the server
killed mid-call (a tool error, the task goes on), a server down at task start (a step says so), secrets kept out of
history and steps, and the recorded history of mcp-tools-v1 replaying."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from morgus.config import ConfigError
from morgus.contracts import Phase
from morgus.mcp.config import load_mcp_config
from morgus.mcp.names import SCHEMA_MAX_CHARS, fixed_tools
from tests.conftest import free_port, settings_env, start, task_id_of
from tests.test_replay import replay_every_run

SERVER = Path(__file__).parent / "mcp_servers" / "notes_server.py"
ENV_SECRET = "env-s3cret-value-1"
HEADER_SECRET = "hdr-s3cret-value-2"


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    """The streamable-HTTP server on loopback, logging its calls to its own file."""
    log = tmp_path_factory.mktemp("mcp-http") / "calls.jsonl"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        env={"PATH": "/usr/bin:/bin", "NOTES_LOG": str(log)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the HTTP MCP server did not start") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp", log
    proc.kill()
    proc.wait()


def _call(name: str, **args) -> dict:
    return {"content": None, "tool_calls": [{"name": name, "arguments": args}]}


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def test_task_uses_mcp_tools_end_to_end(client, store, settings_with, worker_for, llm, tmp_path, http_server):
    url, http_log = http_server
    stdio_log = tmp_path / "stdio-calls.jsonl"
    config = {
        "servers": {
            "notes": {
                "command": sys.executable,
                "args": [str(SERVER), "stdio"],
                "env": {"NOTES_LOG": str(stdio_log), "API_TOKEN": ENV_SECRET},
                "phases": ["RESEARCH"],
                "timeout_s": 30,
            },
            "web": {
                "url": url,
                "headers": {"Authorization": f"Bearer {HEADER_SECRET}"},
                "phases": ["RESEARCH", "BUILD"],
            },
            "down": {"url": f"http://127.0.0.1:{free_port()}/mcp", "timeout_s": 5},
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(config))
    settings = settings_with(MORGUS_MCP_CONFIG=str(path))
    marker = llm.add(
        "mcp-e2e",
        [
            {
                "content": None,
                "tool_calls": [
                    {"name": "notes__lookup", "arguments": {"topic": "hours"}},
                    {"name": "web__lookup", "arguments": {"topic": "menu"}},
                ],
            },
            _call("notes__huge", megabytes=10),
            _call("notes__crash"),
            {"content": "research done"},
            _call("notes__lookup", topic="plan"),  # PLAN: not offered there
            {"content": "plan"},
            _call("web__lookup", topic="build"),
            {"content": "built"},
            {"content": "ran"},
            {"content": "done"},
        ],
    )
    async with worker_for(settings):
        handle = await start(client, settings, marker)
        result = await handle.result()
    assert result.status == "completed", result.error_message
    requests = llm.requests_for("mcp-e2e")

    # the schemas were offered in the configured phases only; the server that was down offers nothing
    def offered(i: int) -> dict[str, dict]:
        return {t["function"]["name"]: t["function"] for t in requests[i].body.get("tools", [])}

    research, plan, build = offered(0), offered(4), offered(6)
    assert research["notes__lookup"]["parameters"]["properties"]["topic"]["type"] == "string"
    assert research["notes__lookup"]["description"] == "Look up the team's note on a topic."
    assert {"notes__lookup", "notes__huge", "notes__crash", "web__lookup", "file_read"} <= set(research)
    assert not any(n.startswith("down__") for n in research)
    assert not any(n.startswith(("notes__", "web__")) for n in plan)
    assert "web__lookup" in build and "notes__lookup" not in build

    def tool_results(i: int) -> list[str]:
        return [m["content"] for m in requests[i].body["messages"] if m["role"] == "tool"]

    # the calls reached the servers, and their results reached the model
    assert tool_results(1)[-2:] == ["note on hours: the bakery opens at 7.", "note on menu: the bakery opens at 7."]
    assert [c["args"] for c in _log(stdio_log) if c["tool"] == "lookup"] == [{"topic": "hours"}]
    assert [c["args"]["topic"] for c in _log(http_log) if c["tool"] == "lookup"] == ["menu", "build"]
    # 10 MB from the server: the model gets 16 KB and a note
    huge = tool_results(2)[-1]
    assert huge.startswith("xxxx") and len(huge) < 17_000
    assert "[output capped at 16 KB of 10485760 characters]" in huge
    # the server died mid-call (destructive: called once): the model hears why, the task went on
    crashed = tool_results(3)[-1]
    assert crashed.startswith("Error: tool notes__crash failed: MCP server 'notes' closed the connection"), crashed
    assert [c["tool"] for c in _log(stdio_log)].count("crash") == 1
    assert "'notes__lookup' is not available in phase PLAN" in tool_results(5)[-1]

    steps = await store.fetch_steps(task_id_of(handle))
    down = [s["content"] for s in steps if s["type"] == "NOTIFICATION" and "'down'" in s["content"]]
    assert down and "its tools are not offered in this task" in down[0], down
    history = (await handle.fetch_history()).to_json()
    # payloads are base64 in the JSON: read them too, or a secret in an activity's result would go unseen
    history += "".join(
        base64.b64decode(m.group(1)).decode("utf-8", "replace") for m in re.finditer(r'"data": ?"([^"]+)"', history)
    )
    assert "notes__lookup" in history
    assert any("holds one of the server's configured secrets" in (s["content"] or "") for s in steps)
    for secret in (ENV_SECRET, HEADER_SECRET):
        assert secret not in history and all(secret not in json.dumps(s, default=str) for s in steps)
        assert all(secret not in json.dumps(r.body) for r in requests), secret
    await replay_every_run(client, handle, record_as="task-mcp-v16")


def test_bad_config_is_a_clear_error(tmp_path, settings):
    bad = tmp_path / "bad.json"
    cases = {
        '{"servers": {"Notes!": {"command": "x"}}}': "servers.Notes!.[key]: a server name is 1-32 of a-z",
        '{"servers": {"a": {"command": "x", "url": "http://h"}}}': "servers.a: give exactly one of `command`",
        '{"servers": {"a": {"url": "file:///etc/passwd"}}}': "servers.a: `url` must be an http:// or https:// URL",
        '{"servers": {"a": {"command": "x", "phases": ["DEPLOY"]}}}': "servers.a.phases.0: Input should be",
        '{"servers": {"a": {"url": "http://h", "headers": {"X": "tok\\r\\nInjected: 1"}}}}': "holds a line break",
        '{"servers": {"a": {"command": "x", "envv": {}}}}': "servers.a.envv: Extra inputs are not permitted",
        "{": "not valid JSON",
    }
    for text, expected in cases.items():
        bad.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_mcp_config(bad)
        assert expected in str(e.value), (text, str(e.value))
        assert "tok" not in str(e.value)
    toml = tmp_path / "ok.toml"
    toml.write_text('[servers.docs]\nurl = "https://mcp.example/mcp"\nheaders = {Authorization = "Bearer zzzz"}\n')
    cfg = load_mcp_config(toml)
    assert "zzzz" not in repr(cfg) and "mcp.example" not in repr(cfg)
    # the worker refuses to start on a bad file, with one line naming the field
    bad.write_text('{"servers": {"a": {"command": "x", "timeout_s": -1}}}')
    env = {**settings_env(settings), "MORGUS_MCP_CONFIG": str(bad)}
    run = subprocess.run([sys.executable, "-m", "morgus.worker"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert "servers.a.timeout_s: Input should be greater than 0" in run.stderr


def test_hostile_tool_listing_is_sanitised():
    class T:
        def __init__(self, name, schema, annotations=None):
            self.name, self.input_schema, self.annotations, self.description = name, schema, annotations, "d\x00"

    obj = {"type": "object", "properties": {}}
    listed = [
        T("read file/v2 ☃", obj),
        T("read file_v2 ☃", obj),  # the same name once sanitised: left out
        T("x" * 300, obj),  # cut to 64 for the model; the server still gets its own name
        T("y" * 600, obj),  # too long to carry: left out
        T("big", {"type": "object", "description": "y" * SCHEMA_MAX_CHARS}),
        T("array", {"type": "array"}),
        T("", obj),
    ]
    tools, notes = fixed_tools("srv", listed, phases=[Phase.BUILD], timeout_s=5, taken=set())
    names = [t.name for t in tools]
    assert names == ["srv__read_file_v2__", "srv__" + "x" * 59] and tools[1].tool == "x" * 300
    assert all(len(n) <= 64 for n in names) and tools[0].tool == "read file/v2 ☃"
    assert tools[0].description == "d\ufffd" and not tools[0].read_only
    assert len(notes) == 5 and any("already taken" in n for n in notes)


async def test_reply_over_the_limit_is_refused_and_the_stdio_server_stopped(tmp_path, http_server):
    """Past MORGUS_MCP_MAX_REPLY_MB the reply is not read: a clear error, the stdio server killed, memory bounded."""
    import os

    from morgus.mcp.client import McpUnavailable, call_tool
    from morgus.mcp.config import McpServerConfig

    log = tmp_path / "calls.jsonl"
    servers = {
        "s": McpServerConfig(command=sys.executable, args=[str(SERVER), "stdio"], env={"NOTES_LOG": str(log)}),
        "h": McpServerConfig(url=http_server[0]),
    }
    for name, cfg in servers.items():
        with pytest.raises(McpUnavailable, match=f"MCP server '{name}' sent a reply larger than 1048576 bytes"):
            await call_tool(name, cfg, "huge", {"megabytes": 3}, max_bytes=1 << 20, cap=16_000)
    pid = _log(log)[0]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_secret_cut_by_the_output_cap_is_still_redacted(tmp_path):
    """red3: the result was capped first and scrubbed after, so a token straddling the 16 KB cap kept its first
    characters; a server (or the model, choosing a padding argument) could bring out a prefix of any length."""
    from morgus.mcp.client import call_tool
    from morgus.mcp.config import McpServerConfig

    cfg = McpServerConfig(command=sys.executable, args=[str(SERVER), "stdio"], env={"API_TOKEN": ENV_SECRET})
    cap = 1000
    for pad in (cap - 10, cap - len(ENV_SECRET), cap - 1):
        result = await call_tool("s", cfg, "padded_env", {"name": "API_TOKEN", "pad": pad}, max_bytes=1 << 20, cap=cap)
        assert len(result.text) <= cap and result.text.startswith("." * pad), pad
        assert ENV_SECRET[:4] not in result.text, (pad, result.text[-20:])
