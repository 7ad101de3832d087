"""The `morgus` command and the worker in front of bad input: usage errors and bad configuration are one line
and a non-zero exit (never a traceback), and text a task carries cannot drive the terminal. Real subprocesses,
real embedded Postgres."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from morgus.config import ConfigError, Settings, load_settings
from morgus.db.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parent.parent
# Environment for a subprocess: nothing inherited from the operator's Morgus configuration.
BASE_ENV = {
    k: v
    for k, v in os.environ.items()
    if not k.startswith(("MORGUS_", "TEMPORAL_", "DATABASE_URL", "OPENAI_", "BRAVE_", "CLOUDFLARE_"))
}


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**BASE_ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_line(proc: subprocess.CompletedProcess, code: int | None = 2) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    if code is None:
        assert proc.returncode != 0
    else:
        assert proc.returncode == code, (proc.returncode, proc.stderr)
    return lines[0]


USAGE_ERRORS = [
    (["nope"], "No such command 'nope'"),
    (["task", "nope"], "No such command 'nope'"),
    (["task", "show"], "Missing argument 'task'"),
    (["task", "start"], "Missing argument 'description'"),
    (["task", "answer", "x"], "Missing argument 'text'"),
    (["task", "cancel"], "Missing argument 'task'"),
    (["task", "list", "--status"], "requires an argument"),
    (["task", "list", "--status", "bogus"], "'bogus' is not one of 'pending'"),
    (["task", "list", "--status", "Completed "], "is not one of"),
    (["task", "list", "--limit", "x"], "Invalid value for '--limit'"),
    (["task", "list", "--limit", "0"], "Invalid value for '--limit'"),
    (["task", "list", "--limit", "1001"], "Invalid value for '--limit'"),
    (["task", "list", "--bogus"], "No such option: --bogus"),
    (["up", "--nope"], "No such option: --nope"),
    (["api", "--port", "http"], "Invalid value for '--port'"),
    (["task", "start", "x", "--wait=yes"], "--wait"),
    (["db", "migrate", "extra"], "unexpected extra argument"),
    (["nope\x1b[2J\x1b]52;c;aGk=\x07"], "No such command"),
]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS, ids=[" ".join(a)[:30] for a, _ in USAGE_ERRORS])
def test_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    line = assert_one_line(run(["-m", "morgus", *args]))
    assert line.startswith("morgus: ") and expected.lower() in line.lower() and "--help" in line
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", line)  # the typed escape sequence comes back inert


def test_bare_command_prints_help() -> None:
    for args in ([], ["task"]):
        proc = run(["-m", "morgus", *args])
        assert proc.returncode == 2 and "Usage: morgus" in proc.stdout and proc.stderr == ""


HOSTILE = "evil\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\rFAKE PROMPT $ \u202eexe.txt\x9b31m\x08"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
def hostile_task(postgres: EmbeddedPostgres) -> str:
    task_id = str(uuid.uuid4())
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(
            "insert into tasks (id, workflow_id, title, description, status, phase, pending_question, "
            "error_message) values (%s, %s, %s, %s, 'waiting_for_input', 'BUILD', %s, %s)",
            (task_id, f"task-{task_id}", HOSTILE, HOSTILE, "[red]Q?[/red] " + HOSTILE, HOSTILE),
        )
        for seq, kind in enumerate(("TASK_START", "TOOL_RESULT", "QUESTION", "ERROR")):
            conn.execute(
                "insert into task_steps (id, task_id, seq, phase, type, content) values (%s, %s, %s, %s, %s, %s)",
                (str(uuid.uuid4()), task_id, seq, "BUILD", kind, f"step {seq} {HOSTILE}"),
            )
        conn.execute(
            "insert into artifacts (id, task_id, type, name, url, path) values (%s, %s, 'file', %s, %s, %s)",
            (str(uuid.uuid4()), task_id, HOSTILE, "http://x/" + HOSTILE, HOSTILE),
        )
    return task_id


def test_task_text_is_printed_escaped(postgres: EmbeddedPostgres, hostile_task: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": postgres.dsn, "MORGUS_HOME": str(tmp_path)}
    listing = run(["-m", "morgus", "task", "list", "--status", "waiting_for_input", "--limit", "1000"], env)
    show = run(["-m", "morgus", "task", "show", hostile_task], env)
    for proc in (listing, show):
        assert proc.returncode == 0, proc.stderr
        assert not CONTROL.search(proc.stdout), repr(proc.stdout)
    assert "evil\\x1b[2J\\x1b]52;c;cm0gLXJmIH4=\\x07\\x0dFAKE" in listing.stdout.replace("\n", "")
    out = show.stdout
    assert out.count("\\x1b]52;c;") >= 8  # title, question, error, 4 steps, artifact (name, url, ...)
    assert "\\u202eexe.txt\\x9b31m\\x08" in out
    assert "[red]Q?[/red]" in out  # markup in task text is shown, not interpreted


def test_term_safe_covers_every_control() -> None:
    from morgus.app.terminal import term_safe

    for c in [
        *range(0x00, 0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0xFEFF,
    ]:
        shown = term_safe(f"a{chr(c)}b")
        assert chr(c) not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert term_safe("line 1\n\tline 2\x1b", newlines=True) == "line 1\n\tline 2\\x1b"
    assert term_safe("café 👩‍💻 ok") == "café 👩‍💻 ok"


BAD_ENV = [
    ({"MORGUS_SANDBOX": "nope"}, "MORGUS_SANDBOX"),
    ({"MORGUS_LOG_LEVEL": "loud"}, "MORGUS_LOG_LEVEL"),
    ({"MORGUS_LOG_FORMAT": "xml"}, "MORGUS_LOG_FORMAT"),
    ({"TEMPORAL_ADDRESS": "no-port"}, "TEMPORAL_ADDRESS"),
    ({"DATABASE_URL": "mysql://root@morgus/db/x"}, "DATABASE_URL"),
    ({"MORGUS_MAX_SANDBOXES": "0"}, "MORGUS_MAX_SANDBOXES"),
    ({"MORGUS_CONTEXT_THRESHOLD": "abc"}, "MORGUS_CONTEXT_THRESHOLD"),
    ({"OPENAI_BASE_URL": "file:///etc/passwd"}, "OPENAI_BASE_URL"),
    ({"MORGUS_GIT_AUTHOR": "nobody"}, "MORGUS_GIT_AUTHOR"),
    ({"MORGUS_GIT_REMOTE": "--upload-pack=touch /tmp/x"}, "MORGUS_GIT_REMOTE"),
    ({"MORGUS_FETCH_ALLOW": "10.0.0.0/8,not a host"}, "MORGUS_FETCH_ALLOW"),
    ({"MORGUS_POLICY_ALLOW": "rm-root,everything"}, "MORGUS_POLICY_ALLOW"),
    ({"MORGUS_SEARCH_PROVIDER": "google"}, "MORGUS_SEARCH_PROVIDER"),
    ({"MORGUS_SEARCH_PROVIDER": "searxng"}, "MORGUS_SEARXNG_URL"),
    ({"CLOUDFLARE_API_TOKEN": "t"}, "CLOUDFLARE_ACCOUNT_ID"),
    ({"MORGUS_SITES_URL": "javascript:alert(1)"}, "MORGUS_SITES_URL"),
    ({"MORGUS_METRICS_ADDR": "9464"}, "MORGUS_METRICS_ADDR"),
]


@pytest.mark.parametrize(
    ("env", "name"), BAD_ENV, ids=[f"{next(iter(e))}={next(iter(e.values()))}"[:40] for e, _ in BAD_ENV]
)
def test_bad_configuration_stops_the_worker(env: dict[str, str], name: str) -> None:
    line = assert_one_line(run(["-m", "morgus.worker"], env))
    assert line.startswith("morgus worker: invalid configuration") and name in line


@pytest.mark.parametrize(
    "command",
    [["-m", "morgus", "worker"], ["-m", "morgus", "api"], ["-m", "morgus", "up"], ["-m", "morgus", "task", "list"]],
)
def test_bad_sandbox_stops_every_entry_point(command: list[str]) -> None:
    line = assert_one_line(run(command, {"MORGUS_SANDBOX": "nope"}))
    assert "MORGUS_SANDBOX" in line and "'auto', 'docker' or 'bwrap'" in line


def test_database_password_is_never_shown(postgres: EmbeddedPostgres, tmp_path: Path) -> None:
    from morgus.app.client import redact_dsn

    secret = "hunter2-" + uuid.uuid4().hex
    bad = f"postgresql://morgus:{secret}@127.0.0.1:1/x?no_such_option=1"
    line = assert_one_line(run(["-m", "morgus.worker"], {"DATABASE_URL": bad}))
    assert "DATABASE_URL" in line and secret not in line
    with pytest.raises(ConfigError) as e:
        load_settings(DATABASE_URL=bad)
    assert secret not in str(e.value)
    # unreachable server: the CLI names host and port, not the password
    proc = run(["-m", "morgus", "task", "list"], {"DATABASE_URL": f"postgresql://morgus:{secret}@127.0.0.1:1/x"})
    assert proc.returncode == 2 and secret not in proc.stderr + proc.stdout and "127.0.0.1:1/x" in proc.stderr
    # the embedded DSN carries the generated password; repr and the redacted form do not
    password = postgres.dsn.split(":")[2].split("@")[0]
    assert len(password) >= 40
    settings = Settings(DATABASE_URL=postgres.dsn, MORGUS_HOME=str(tmp_path))  # type: ignore[call-arg]
    assert password not in repr(settings) and password not in str(settings)
    assert password not in redact_dsn(settings.dsn)
    # without DATABASE_URL, Settings finds the role's password under MORGUS_HOME
    home = Settings(MORGUS_HOME=str(postgres.secrets_dir))  # type: ignore[call-arg]
    assert home.dsn.startswith(f"postgresql://morgus:{password}@127.0.0.1:")


def test_readme_variables_are_all_settings() -> None:
    """Every variable in the README's configuration table is a Settings field, so it is checked at start."""
    table = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    names = set(
        re.findall(
            r"`([A-Z][A-Z0-9_]+)`",
            "\n".join(line.split("|")[1] for line in table.splitlines() if line.startswith("| `")),
        )
    )
    aliases = {f.alias for f in Settings.model_fields.values()}
    assert names and names <= aliases, sorted(names - aliases)
