"""The workspace is hostile: traps planted from inside a real sandbox never reach the host.

Sandboxed code plants symlinks (to /proc/<pid>/environ, /etc/shadow, /, a host folder, dangling, in a parent
component, swapped back and forth while the host works), hardlinks, FIFOs, sockets, a 10 GB sparse file, deep and
wide trees and names with control characters; then the host-side tools (file_read, file_write, file_list,
deploy_local), the sites server and the log artifact are used on them. Nothing secret or outside the workspace is
returned, stored, published or served; nothing hangs; the task completes. The unit tests at the top do the same
against morgus.activities.tools.safe_fs directly, without a sandbox.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from morgus.activities.tools import REGISTRY, ToolContext, ToolError, safe_fs
from morgus.activities.tools.shell import log_name
from morgus.contracts import Phase, SandboxOptions, TaskResult
from morgus.sandbox.base import give_to_sandbox_user
from morgus.sandbox.output import CappedOutput
from tests.conftest import free_port, make_settings, start, task_id_of
from tests.helpers.backends import bwrap_or_skip, docker_or_skip

HOST_SECRET = f"HOSTONLY-{uuid.uuid4().hex}"
ENV_SECRET = f"sk-trap-{uuid.uuid4().hex}"
TOKEN_SECRET = f"ghp_trap{uuid.uuid4().hex}"


def _readable_shadow() -> str | None:
    try:
        return Path("/etc/shadow").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def _host_env_entries() -> list[str]:
    """Long KEY=VALUE entries of this process's real environ block (what /proc/self/environ gives), minus the few
    that a sandbox's own environment could print as well."""
    common = {"PATH", "HOME", "LANG", "TERM", "HOSTNAME", "PWD", "SHLVL", "USER", "LC_ALL", "_", "OLDPWD", "SHELL"}
    raw = Path("/proc/self/environ").read_bytes().split(b"\0")
    out = []
    for e in raw:
        text = e.decode("utf-8", "replace")
        if len(text) >= 16 and "=" in text and text.split("=", 1)[0] not in common:
            out.append(text)
    return out


def assert_no_secret(texts: list[str], where: str, extra: list[str] = ()) -> None:
    secrets = [HOST_SECRET, ENV_SECRET, TOKEN_SECRET, *extra]
    shadow = _readable_shadow()
    if shadow:
        secrets.append(shadow)
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{where} leaked {secret[:30]!r}: {text[:300]!r}"


@pytest.fixture
def host_dir() -> Any:
    """A folder outside the workspace holding a secret, readable by anyone on the host (only the host-side code's
    discipline keeps it out of the task)."""
    d = Path(tempfile.mkdtemp(prefix="morgus-host-"))
    d.chmod(0o755)
    (d / "marker.txt").write_text(HOST_SECRET)
    (d / "index.html").write_text(f"<h1>{HOST_SECRET}</h1>")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def env_holder() -> Any:
    """A host process whose environment holds the secrets (what /proc/<pid>/environ would give a reader)."""
    proc = subprocess.Popen(["sleep", "600"], env={"OPENAI_API_KEY": ENV_SECRET, "MORGUS_GIT_TOKEN": TOKEN_SECRET})
    yield proc
    proc.kill()
    proc.wait()


# ---------------------------------------------------------------- safe_fs against each trap (no sandbox)


@pytest.fixture
def ws(host_dir: Path, env_holder: subprocess.Popen, tmp_path: Path) -> Path:
    w = tmp_path / "ws"
    w.mkdir()
    (w / "ok.txt").write_text("fine")
    os.symlink("/proc/self/environ", w / "env.txt")
    os.symlink(f"/proc/{env_holder.pid}/environ", w / "holder-env.txt")
    os.symlink("/etc/shadow", w / "shadow.txt")
    os.symlink("/", w / "root")
    os.symlink(str(host_dir), w / "outside")
    os.symlink(str(host_dir / "marker.txt"), w / "marker.txt")
    os.symlink("/nonexistent/target", w / "dangling")
    os.mkfifo(w / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(w / "sock"))
    sock.close()
    (w / "orig.txt").write_text("shared")
    os.link(w / "orig.txt", w / "hard.txt")
    with open(w / "huge.bin", "wb") as f:
        f.truncate(10 * 1024**3)
    (w / "site").mkdir()
    (w / "site" / "index.html").write_text("<h1>ok</h1>")
    return w


READ_REFUSALS = [
    ("env.txt", "is a symlink"),
    ("holder-env.txt", "is a symlink"),
    ("shadow.txt", "is a symlink"),
    ("root", "is a symlink"),
    ("root/etc/passwd", "'root' is a symlink"),
    ("outside/marker.txt", "'outside' is a symlink"),
    ("marker.txt", "is a symlink"),
    ("dangling", "is a symlink"),
    ("fifo", "is a FIFO, not a regular file"),
    ("sock", "is a socket, not a regular file"),
    ("hard.txt", "2 hard links"),
    ("orig.txt", "2 hard links"),
    ("site", "is a folder"),
    ("../etc/passwd", "contains '..'"),
    ("/etc/passwd", "is absolute"),
    ("nope", "does not exist"),
]


@pytest.mark.parametrize("rel,message", READ_REFUSALS, ids=[r for r, _ in READ_REFUSALS])
def test_safe_open_refuses_each_trap(ws: Path, rel: str, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(")) as e:
        safe_fs.read_file(ws, rel, 1000)
    assert_no_secret([str(e.value)], rel)


def test_safe_open_reads_a_regular_file_and_caps_a_huge_one(ws: Path) -> None:
    assert safe_fs.read_file(ws, "ok.txt", 1000) == b"fine"
    assert safe_fs.read_file(ws, "./site/index.html", 1000) == b"<h1>ok</h1>"
    assert len(safe_fs.read_file(ws, "huge.bin", 200_000)) == 200_001  # one byte past the cap says "there is more"


def test_a_device_node_is_refused(ws: Path) -> None:
    try:
        os.mknod(ws / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod is not permitted here, so no device node can be planted either")
    with pytest.raises(ToolError, match="is a character device, not a regular file"):
        safe_fs.read_file(ws, "null", 10)


def test_writes_replace_a_planted_name_and_never_write_through_it(ws: Path, host_dir: Path) -> None:
    for rel in ("marker.txt", "fifo", "dangling", "sock"):
        safe_fs.write_file(ws, rel, b"mine")  # the link/FIFO/socket is replaced by a file of ours, not followed
        st = os.lstat(ws / rel)
        assert stat.S_ISREG(st.st_mode) and (ws / rel).read_bytes() == b"mine"
    assert (host_dir / "marker.txt").read_text() == HOST_SECRET
    probe = f"tmp/morgus-trap-{os.getpid()}-{id(ws)}"  # a name no other process on this machine uses
    for rel, message in [
        ("outside/new.txt", "'outside' is a symlink"),
        (f"root/{probe}", "'root' is a symlink"),
        ("ok.txt/x", "is a regular file, not a folder"),
        ("site", "is a folder"),
    ]:
        with pytest.raises(ToolError, match=message):
            safe_fs.write_file(ws, rel, b"x")
    assert sorted(os.listdir(host_dir)) == ["index.html", "marker.txt"] and not Path("/", probe).exists()
    safe_fs.write_file(ws, "a/b/c.txt", b"deep")
    assert (ws / "a/b/c.txt").read_bytes() == b"deep"
    assert not [n for n in os.listdir(ws) if n.startswith(safe_fs.TEMP_PREFIX)]


def test_the_listing_shows_links_and_specials_and_never_descends_into_them(ws: Path) -> None:
    (ws / "site" / "evil\nname\x1b[31m.txt").write_text("x")
    entries, cut = safe_fs.walk(ws, ".", max_entries=100)
    kinds = {e.rel: safe_fs.kind(e.mode) for e in entries}
    assert not cut
    assert kinds["root"] == kinds["outside"] == kinds["env.txt"] == "symlink"
    assert kinds["fifo"] == "FIFO" and kinds["sock"] == "socket" and kinds["huge.bin"] == "regular file"
    assert "site/evil\\nname\\x1b[31m.txt" in kinds  # escaped: it cannot forge a line or colour a terminal
    assert not any(r.startswith(("root/", "outside/")) for r in kinds)
    _, cut = safe_fs.walk(ws, ".", max_entries=5)
    assert cut


def test_a_published_tree_holds_only_regular_files_and_folders(ws: Path, tmp_path: Path) -> None:
    site = ws / "site"
    for name in ("env.txt", "shadow.txt", "root", "outside", "fifo", "sock", "hard.txt"):
        os.rename(ws / name, site / name)
    os.makedirs(site / "deep" / "/".join(["d"] * 80))
    out = tmp_path / "out"
    out.mkdir()
    with (
        safe_fs.closing_fd(safe_fs.open_root(ws)) as rfd,
        safe_fs.closing_fd(safe_fs.open_dir(rfd, ["site"])) as src,
        safe_fs.closing_fd(os.open(out, os.O_PATH | os.O_DIRECTORY)) as dst,
    ):
        report = safe_fs.copy_regular_tree(src, dst, max_files=100, max_bytes=10**6)
    assert report.files == 1
    assert {s.split(" (")[0] for s in report.skipped} >= {
        "env.txt",
        "shadow.txt",
        "root",
        "outside",
        "fifo",
        "sock",
        "hard.txt",
    }
    assert any("nested deeper than" in s for s in report.skipped)
    for dirpath, dirnames, filenames in os.walk(out):
        for n in dirnames + filenames:
            mode = os.lstat(os.path.join(dirpath, n)).st_mode
            assert stat.S_ISDIR(mode) or stat.S_ISREG(mode)


def test_sandbox_ownership_walk_never_follows_a_planted_link(ws: Path, host_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("files are handed to the sandbox user only when the worker runs as root")
    (ws / "mine.txt").write_text("root wrote this")
    before = {p: os.lstat(p).st_uid for p in [host_dir, host_dir / "marker.txt", Path("/etc/shadow"), Path("/")]}
    give_to_sandbox_user(ws)
    assert {p: os.lstat(p).st_uid for p in before} == before  # nothing outside the workspace changed hands
    assert os.lstat(ws / "mine.txt").st_uid != 0
    assert os.lstat(ws / "hard.txt").st_uid == 0  # a hard-linked file is never handed over


def test_log_names_from_hostile_call_ids_stay_in_their_folder() -> None:
    assert log_name("call_abc-1") == "call_abc-1.log"
    for hostile in ("../../etc/cron.d/x", "a/b", "x\x00y", "." * 3, "a" * 5000, "", "é"):
        name = log_name(hostile)
        assert "/" not in name and "\x00" not in name and not name.startswith(".") and len(name) < 120


def test_the_sites_server_serves_no_link_or_special_file_on_its_own(tmp_path: Path, host_dir: Path) -> None:
    from morgus.app.sites import serve_sites

    root = tmp_path / "sites"
    site = root / "t1"
    site.mkdir(parents=True)
    (site / "index.html").write_text("<h1>site</h1>")
    (site / "sub").mkdir()
    (site / "sub" / "index.html").write_text("sub")
    os.symlink(str(host_dir / "marker.txt"), site / "marker.txt")
    os.symlink(str(host_dir), site / "outside")
    os.symlink("/proc/self/environ", site / "env.txt")
    os.symlink(str(host_dir), root / "t2")  # a whole site that is a link
    os.mkfifo(site / "pipe")
    server = serve_sites(root, f"http://127.0.0.1:{free_port()}")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client(timeout=10) as http:
            assert http.get(f"{base}/t1/").text == "<h1>site</h1>"
            assert http.get(f"{base}/t1/sub/").text == "sub"
            moved = http.get(f"{base}/t1/sub")
            assert moved.status_code == 301 and moved.headers["location"] == "/t1/sub/"
            for path in (
                "/",
                "/t1/marker.txt",
                "/t1/outside/marker.txt",
                "/t1/outside/",
                "/t1/env.txt",
                "/t2/",
                "/t2/marker.txt",
                "/t1/pipe",
                "/t1/%2e%2e/t1/index.html",
                "/t1/..%2f..%2fetc/passwd",
                "/t1/%00",
                "/t1/%ff",
            ):
                r = http.get(base + path)
                assert r.status_code == 404, path
                assert_no_secret([r.text], path, _host_env_entries())
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- the same traps planted from inside a real sandbox


def _backend(kind: str, workspace_root: Path) -> Any:
    if kind == "docker":
        return docker_or_skip()
    if kind == "docker-pool":  # one warm container, ready before the task asks: the task must claim it
        from morgus.sandbox.pool import SandboxPool

        pool = SandboxPool(docker_or_skip(), workspace_root, size=1, idle_s=3600)
        pool.files.prepare()
        pool.fill()
        return pool
    bwrap_or_skip()
    from morgus.sandbox.bwrap_backend import BwrapBackend

    return BwrapBackend(workspace_root)


def _plant(host_dir: Path, holder_pid: int) -> str:
    return "\n".join(
        [
            "set -e",
            "mkdir -p site/css && echo '<h1>ok</h1>' > site/index.html && echo 'h1{}' > site/css/s.css",
            "ln -s /proc/self/environ site/env.txt",
            f"ln -s /proc/{holder_pid}/environ site/holder-env.txt",
            "ln -s /etc/shadow site/shadow.txt",
            "ln -s / site/root",
            f"ln -s {host_dir} site/outside",
            f"ln -s {host_dir}/marker.txt site/marker.txt",
            "ln -s /nonexistent/target site/dangling",
            "mkfifo site/pipe",
            "python3 -c \"import socket; socket.socket(socket.AF_UNIX).bind('site/sock')\"",
            "echo shared > site/orig.txt && ln site/orig.txt site/hard.txt",
            "(mknod site/null c 1 3 2>/dev/null && echo MKNOD-DONE) || echo MKNOD-REFUSED",
            "python3 -c \"import os; p = 'site/deep/' + '/'.join(['d'] * 80); os.makedirs(p); open(p + '/leaf.txt', 'w').write('leaf')\"",
            "python3 -c \"open('site/evil\\nname\\x1b[31m.txt', 'w').write('fine')\"",
            # traps for the other tools
            "ln -s /proc/self/environ env.txt && ln -s / rootlink && mkfifo fifo",
            f"ln -s {host_dir} linkdir && ln -s {host_dir}/marker.txt w_marker && mkfifo w_fifo",
            "mkdir bigsite && echo '<h1>big</h1>' > bigsite/index.html && truncate -s 10G bigsite/huge.bin",
            "mkdir many && echo '<h1>many</h1>' > many/index.html && "
            "python3 -c \"[open(f'many/f{i}.txt', 'w').close() for i in range(10050)]\"",
            "mkdir linkidx && ln -s /etc/passwd linkidx/index.html",
            f"ln -s {host_dir} sitelink",
            'echo PLANTED; echo "box=$(hostname)"',
        ]
    )


def _call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "arguments": args}


READS = [
    "env.txt",
    "site/holder-env.txt",
    "site/shadow.txt",
    "site/marker.txt",
    "rootlink/etc/passwd",
    "linkdir/marker.txt",
    "site/dangling",
    "fifo",
    "site/sock",
    "site/hard.txt",
    "bigsite/huge.bin",
    "site/index.html",
]
WRITES = [("w_marker", "overwritten"), ("w_fifo", "overwritten"), ("linkdir/new.txt", "x"), ("rootlink/tmp/pwned", "x")]
LISTS = [".", "site", "linkdir"]
DEPLOYS = ["site", "bigsite", "many", "linkidx", "sitelink"]


@pytest.mark.parametrize("kind", ["docker", "docker-pool", "bwrap"])
async def test_traps_planted_in_the_sandbox_never_reach_the_host(
    kind, client, store, llm, temporal_server, postgres, tmp_path, host_dir, env_holder, monkeypatch, worker_for
):
    from morgus.app.sites import serve_sites

    root = Path(tempfile.mkdtemp(prefix="morgus-traps-"))  # under /tmp, reachable by the sandbox user
    root.chmod(0o755)
    monkeypatch.setenv("MORGUS_GIT_TOKEN", TOKEN_SECRET)  # bait in the worker's own environment too
    settings = make_settings(
        temporal_server, postgres, llm, root, OPENAI_API_KEY=ENV_SECRET, MORGUS_GIT_TOKEN=TOKEN_SECRET
    )
    backend = _backend(kind, settings.workspace_root)
    warm = [backend.backend.client.containers.get(n).id[:12] for n in backend.ready()] if kind == "docker-pool" else []
    server = serve_sites(settings.home.resolve() / "sites", f"http://127.0.0.1:{free_port()}")
    sites_base = f"http://127.0.0.1:{server.server_address[1]}"
    settings = settings.model_copy(update={"sites_url": sites_base})
    shadow_before = os.stat("/etc/shadow")
    marker = llm.add(
        f"traps-{kind}",
        [
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [_call("shell_exec", command=_plant(host_dir, env_holder.pid), timeout_s=120)],
            },
            {"content": None, "tool_calls": [_call("file_read", path=p) for p in READS]},
            {"content": None, "tool_calls": [_call("file_write", path=p, content=c) for p, c in WRITES]},
            {"content": None, "tool_calls": [_call("file_list", path=p) for p in LISTS]},
            {
                "content": None,
                "tool_calls": [_call("shell_exec", command="ls -la w_marker w_fifo; cat w_marker", timeout_s=30)],
            },
            {"content": "build done"},
            {"content": None, "tool_calls": [_call("deploy_local", directory=d) for d in DEPLOYS]},
            {"content": "deployed"},
        ],
    )
    try:
        async with worker_for(settings, backend=backend):
            handle = await start(client, settings, marker)
            result: TaskResult = await asyncio.wait_for(handle.result(), 300)
    except BaseException:
        server.shutdown()
        server.server_close()
        raise
    task_id = task_id_of(handle)
    assert result.status == "completed"
    messages = llm.requests_for(f"traps-{kind}")[-1].body["messages"]
    tool_msgs = [m["content"] for m in messages if m["role"] == "tool"]
    planted, reads = tool_msgs[0], tool_msgs[1 : 1 + len(READS)]
    writes = tool_msgs[1 + len(READS) : 1 + len(READS) + len(WRITES)]
    lists = tool_msgs[1 + len(READS) + len(WRITES) : 1 + len(READS) + len(WRITES) + len(LISTS)]
    after = tool_msgs[1 + len(READS) + len(WRITES) + len(LISTS)]
    deploys = tool_msgs[-len(DEPLOYS) :]
    assert "PLANTED" in planted, planted
    if warm:
        assert f"box={warm[0]}" in planted  # the traps were planted in the claimed warm container
    assert "MKNOD-REFUSED" in planted  # no capability to make a device node in either sandbox (host side: unit test)

    # every read of a trap is refused with a sentence; the one honest file is read
    for path, text in zip(READS[:-1], reads[:-1], strict=True):
        assert text.startswith("Error:") and "refused" in text or "binary file" in text, (path, text)
    assert "is a FIFO" in reads[READS.index("fifo")] and "is a socket" in reads[READS.index("site/sock")]
    assert "'rootlink' is a symlink" in reads[READS.index("rootlink/etc/passwd")]
    assert "2 hard links" in reads[READS.index("site/hard.txt")]
    assert reads[-1] == "<h1>ok</h1>\n"
    # writes replace a planted link/FIFO inside the workspace; a link in a parent is refused
    assert writes[0].startswith("Wrote") and writes[1].startswith("Wrote")
    assert "'linkdir' is a symlink" in writes[2] and "'rootlink' is a symlink" in writes[3]
    assert "-rw" in after and "overwritten" in after  # the sandbox sees plain files where its traps were
    assert sorted(os.listdir(host_dir)) == ["index.html", "marker.txt"] and not Path("/tmp/pwned").exists()
    assert (host_dir / "marker.txt").read_text() == HOST_SECRET and os.stat(
        host_dir / "marker.txt"
    ).st_uid == os.geteuid()
    after_shadow = os.stat("/etc/shadow")
    assert (after_shadow.st_mtime_ns, after_shadow.st_uid) == (shadow_before.st_mtime_ns, shadow_before.st_uid)
    # listings show links and specials without following them, names escaped
    assert "env.txt -> (link, not followed)" in lists[0] and "rootlink -> (link, not followed)" in lists[0]
    assert "site/env.txt -> (link, not followed)" in lists[1] and "site/pipe (FIFO, not a regular file)" in lists[1]
    assert "fifo (FIFO, not a regular file)" in lists[0] and "\x1b" not in lists[0]
    assert "more entries not shown" in lists[0]  # 10,050 files: the listing is bounded
    assert "site/evil\\nname\\x1b[31m.txt (4 bytes)" in lists[1]
    assert "'linkdir' is a symlink" in lists[2]
    # deploy: regular files only, skipped things named; oversize and linked sites refused with a sentence
    assert deploys[0].startswith(f"deployed 3 file(s) from site to {sites_base}/{task_id}/"), deploys[0]
    for name in (
        "env.txt (symlink)",
        "shadow.txt (symlink)",
        "root (symlink)",
        "outside (symlink)",
        "pipe (FIFO)",
        "sock (socket)",
        "hard.txt (2 hard links)",
        "orig.txt (2 hard links)",
        "dangling (symlink)",
    ):
        assert name in deploys[0], name
    assert "nested deeper than" in deploys[0]
    assert "more than 200 MB" in deploys[1] and "more than 10000 files" in deploys[2]
    assert "linkidx/index.html' is a symlink" in deploys[3] and "'sitelink' is a symlink" in deploys[4]

    # nothing secret in what the model got, the steps, the artifacts or the published tree
    host_env = _host_env_entries()
    steps = await store.fetch_steps(task_id)
    assert_no_secret(tool_msgs, "tool result", host_env)
    assert_no_secret([s["content"] or "" for s in steps], "step", host_env)
    published = settings.home.resolve() / "sites" / task_id
    for dirpath, dirnames, filenames in os.walk(published):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            assert stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode), n
            if stat.S_ISREG(st.st_mode):
                assert_no_secret([Path(dirpath, n).read_text(errors="replace")], f"published {n}", host_env)
    assert sorted(os.listdir(published)) == ["css", "deep", "evil\nname\x1b[31m.txt", "index.html"]
    # served: the site, and a 404 for every trap name
    async with httpx.AsyncClient(timeout=10) as http:
        page = await http.get(f"{sites_base}/{task_id}/")
        assert page.status_code == 200 and page.text == "<h1>ok</h1>\n"
        for name in (
            "env.txt",
            "holder-env.txt",
            "shadow.txt",
            "root/etc/passwd",
            "outside/marker.txt",
            "marker.txt",
            "pipe",
            "sock",
            "hard.txt",
        ):
            r = await http.get(f"{sites_base}/{task_id}/{name}")
            assert r.status_code == 404, name
            assert_no_secret([r.text], name, host_env)
    server.shutdown()
    server.server_close()
    # the log artifacts are plain files in the host's log folder
    logs = [a for a in await store.fetch_artifacts(task_id) if a["type"] == "log"]
    assert len(logs) == 2
    for a in logs:
        p = Path(a["path"])
        assert p.parent == settings.home.resolve() / "logs" / task_id and stat.S_ISREG(os.lstat(p).st_mode)
    shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- a name flipped between file and link meanwhile


@pytest.mark.parametrize("kind", ["docker", "bwrap"])
async def test_a_name_swapped_between_file_and_link_while_the_host_works(kind, settings, host_dir):
    root = Path(tempfile.mkdtemp(prefix="morgus-race-"))
    root.chmod(0o755)
    settings = settings.model_copy(update={"workspaces": root})
    task_id = str(uuid.uuid4())
    ws = settings.workspace_for(task_id)
    backend = _backend(kind, root)
    name = backend.ensure(task_id, f"task-{task_id}", ws, SandboxOptions(), "test-queue")
    ctx = ToolContext(task_id=task_id, phase=Phase.BUILD, settings=settings.model_copy(update={"home": root / "home"}))
    # the sandbox flips `race` (a file) and `dir` (a folder) with links to the host's secret, as fast as it can
    flipper = (
        "mkdir -p site && echo '<h1>x</h1>' > site/index.html; end=$((SECONDS+12)); "
        "while [ $SECONDS -lt $end ]; do "
        "echo plain > race.new; mv -f race.new race; "
        f"ln -sfn {host_dir}/marker.txt race.lnk; mv -Tf race.lnk race; "
        "mkdir -p d.new; echo plain > d.new/f; rm -rf dir; mv -T d.new dir 2>/dev/null; "
        f"ln -sfn {host_dir} dir.lnk; mv -Tf dir.lnk dir 2>/dev/null; "
        "cp site/index.html site/r.new; mv -f site/r.new site/race; "
        f"ln -sfn {host_dir}/marker.txt site/r.lnk; mv -Tf site/r.lnk site/race; "
        "done; echo FLIPPED"
    )
    sink = CappedOutput()
    done = threading.Event()

    def flip() -> None:
        backend.exec(name, flipper, timeout_s=60, env={}, sink=sink)
        done.set()

    thread = threading.Thread(target=flip)
    thread.start()
    outcomes: dict[str, int] = {}
    texts: list[str] = []
    try:
        while not done.is_set():
            for tool_name, args in (
                ("file_read", {"path": "race"}),
                ("file_read", {"path": "dir/f"}),
                ("file_write", {"path": "dir/w.txt", "content": "w"}),
                ("file_list", {"path": "."}),
                ("deploy_local", {"directory": "site"}),
            ):
                spec = REGISTRY[tool_name]
                try:
                    out = await spec.run(ctx, spec.args(**args))  # type: ignore[misc]
                    texts.append(out if isinstance(out, str) else out.content)
                    outcomes[f"{tool_name} ok"] = outcomes.get(f"{tool_name} ok", 0) + 1
                except ToolError as e:
                    texts.append(str(e))
                    outcomes[f"{tool_name} refused"] = outcomes.get(f"{tool_name} refused", 0) + 1
    finally:
        thread.join(90)
        backend.remove(name)
    print("race outcomes:", outcomes)
    assert "FLIPPED" in sink.stdout()
    assert sum(outcomes.values()) >= 10, outcomes
    assert_no_secret(texts, "raced tool result")
    sites = ctx.settings.home.resolve() / "sites"
    for dirpath, _dirnames, filenames in os.walk(sites):
        for n in filenames:
            assert_no_secret([Path(dirpath, n).read_text(errors="replace")], f"published {n}")
    assert sorted(os.listdir(host_dir)) == ["index.html", "marker.txt"]  # no write landed through the link
    assert (host_dir / "marker.txt").read_text() == HOST_SECRET
    shutil.rmtree(root, ignore_errors=True)
