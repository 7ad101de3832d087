"""A task's workspace through the API, read-only, against the real app under uvicorn and a real workspace planted
the way a hostile sandbox would: links to /etc/passwd and to the parent folder, a FIFO (opening it would block the
server), a hard link, names with a newline, unicode and bytes that are not UTF-8, a binary file and a big one."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from morgus.app import workspace_files
from morgus.ids import new_task_id, workflow_id_for
from tests.conftest import wait_for
from tests.helpers.api import is_error, served

BIG = ("€" * 1_000_000).encode()  # 3 MB of text: over the 1 MiB view, cut mid-character by the cap
BINARY = bytes(range(256)) * 64
NEWLINE_NAME = "two\nlines.txt"
UNICODE_NAME = "café-π 文字.md"
TOKEN = "files-token-" + "x" * 20


async def new_task(store: Any) -> str:
    task_id = new_task_id()
    await store.insert_pending(task_id, workflow_id_for(task_id), "files", "workspace files", "scripted")
    return task_id


def plant(ws: Path, outside: Path) -> None:
    """What a sandboxed run could leave behind."""
    (ws / "src" / "deep").mkdir(parents=True)
    (ws / "README.md").write_text("# hello\n")
    (ws / "src" / "app.py").write_text("print('hi')\n")
    (ws / "src" / "deep" / "leaf.txt").write_text("leaf\n")
    (ws / "blob.bin").write_bytes(BINARY)
    (ws / "big.txt").write_bytes(BIG)
    (ws / NEWLINE_NAME).write_text("newline name\n")
    (ws / UNICODE_NAME).write_text("unicode name\n")
    os.close(os.open(os.fsencode(ws) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    (ws / "passwd").symlink_to("/etc/passwd")
    (ws / "up").symlink_to("..")
    (ws / "root").symlink_to("/")
    (ws / "src" / "escape").symlink_to("../../secret-outside.txt")
    os.mkfifo(ws / "pipe")
    outside.write_text("the host's secret\n")
    os.link(outside, ws / "hardlink.txt")  # another name of a file outside the workspace
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n\tfsmonitor = touch /tmp/pwned\n")
    (ws / ".morgus-inflight").write_text("a tool's write in flight")


@pytest.fixture
def workspace(settings: Any, tmp_path: Path) -> Any:
    def make(task_id: str) -> Path:
        ws = settings.workspace_for(task_id)
        ws.mkdir(parents=True)
        plant(ws, tmp_path / "secret-outside.txt")
        return ws

    return make


async def test_listing_one_folder(client, store, settings, workspace):
    tid = await new_task(store)
    workspace(tid)
    async with served(settings, client, store) as http:
        top = (await http.get(f"/api/tasks/{tid}/files")).json()
        assert top["path"] == "" and top["truncated"] is False
        entries = {e["name"]: e for e in top["entries"]}
        kinds = {name: e["kind"] for name, e in entries.items()}
        assert kinds == {
            ".git": "dir",
            "src": "dir",
            "README.md": "file",
            "blob.bin": "file",
            "big.txt": "file",
            NEWLINE_NAME: "file",
            UNICODE_NAME: "file",
            "bad\\xff.txt": "file",
            "passwd": "link",
            "up": "link",
            "root": "link",
            "pipe": "other",
            "hardlink.txt": "file",
        }
        names = [e["name"] for e in top["entries"]]
        assert names[:2] == [".git", "src"] and names[2:] == sorted(names[2:])  # folders first, then by name
        assert entries["big.txt"]["size"] == len(BIG) and entries["src"]["size"] is None
        assert entries["passwd"]["size"] is None and entries["pipe"]["size"] is None  # nothing followed or opened
        assert entries["bad\\xff.txt"]["escaped"] is True and entries["README.md"]["escaped"] is False
        assert all(e["mtime"] for e in top["entries"])

        nested = (await http.get(f"/api/tasks/{tid}/files", params={"path": "src"})).json()
        assert [(e["name"], e["kind"]) for e in nested["entries"]] == [
            ("deep", "dir"),
            ("app.py", "file"),
            ("escape", "link"),
        ]
        deep = (await http.get(f"/api/tasks/{tid}/files", params={"path": "src/deep/"})).json()
        assert [e["name"] for e in deep["entries"]] == ["leaf.txt"]
        assert (await http.get(f"/api/tasks/{tid}/files", params={"path": "."})).json()["entries"] == top["entries"]

        # through a link, up, out, or not a folder: refused with one sentence; missing: 404
        for path, words in [
            ("up", "symlink"),
            ("up/up", "symlink"),
            ("root/etc", "symlink"),
            ("src/escape", "symlink"),
            ("../", "'..'"),
            ("src/../..", "'..'"),
            ("/etc", "absolute"),
            ("~root", "absolute"),
            ("src\x00/x", "NUL"),
            ("README.md", "not a folder"),
            ("pipe", "FIFO"),
        ]:
            msg = is_error(await http.get(f"/api/tasks/{tid}/files", params={"path": path}), 400)
            assert words in msg, (path, msg)
            assert "root:" not in msg
        assert "does not exist" in is_error(await http.get(f"/api/tasks/{tid}/files", params={"path": "nope"}), 404)


async def test_one_file_as_text_or_bytes(client, store, settings, workspace):
    tid = await new_task(store)
    ws = workspace(tid)
    url = f"/api/tasks/{tid}/files/content"
    async with served(settings, client, store) as http:
        readme = (await http.get(url, params={"path": "README.md"})).json()
        assert readme == {
            "path": "README.md",
            "size": 8,
            "mtime": readme["mtime"],
            "binary": False,
            "truncated": False,
            "text": "# hello\n",
        }
        assert (await http.get(url, params={"path": "src/deep/leaf.txt"})).json()["text"] == "leaf\n"
        assert (await http.get(url, params={"path": NEWLINE_NAME})).json()["text"] == "newline name\n"
        assert (await http.get(url, params={"path": UNICODE_NAME})).json()["text"] == "unicode name\n"

        blob = (await http.get(url, params={"path": "blob.bin"})).json()
        assert blob["binary"] is True and blob["text"] is None and blob["size"] == len(BINARY)

        big = (await http.get(url, params={"path": "big.txt"})).json()
        assert big["truncated"] is True and big["binary"] is False and big["size"] == len(BIG)
        assert big["text"] == "€" * (workspace_files.MAX_TEXT_BYTES // 3)  # the cut character is dropped, not garbled

        raw = await http.get(url, params={"path": "big.txt", "download": 1})
        assert raw.status_code == 200 and raw.content == BIG
        assert raw.headers["content-type"] == "application/octet-stream"
        assert (
            raw.headers["x-content-type-options"] == "nosniff" and raw.headers["content-security-policy"] == "sandbox"
        )
        assert raw.headers["content-disposition"].startswith('attachment; filename="big.txt"')
        assert (await http.get(url, params={"path": "blob.bin", "download": "1"})).content == BINARY
        odd = await http.get(url, params={"path": NEWLINE_NAME, "download": 1})
        assert odd.content == b"newline name\n" and "\n" not in odd.headers["content-disposition"]
        assert "filename*=UTF-8''two_lines.txt" in odd.headers["content-disposition"]  # saved without the newline
        uni = await http.get(url, params={"path": UNICODE_NAME, "download": 1})
        assert uni.content == b"unicode name\n" and "caf%C3%A9" in uni.headers["content-disposition"]

        for path, words in [
            ("passwd", "symlink"),
            ("up/etc/passwd", "symlink"),
            ("root/etc/passwd", "symlink"),
            ("src/escape", "symlink"),
            ("pipe", "FIFO"),  # refused from its fstat: never opened, so the request does not hang
            ("hardlink.txt", "hard links"),
            ("src", "folder"),
            (".", "workspace folder"),
            ("../secret-outside.txt", "'..'"),
            ("/etc/passwd", "absolute"),
            (str(ws / "README.md"), "absolute"),
            ("README.md\x00.png", "NUL"),
            ("", "non-empty"),
        ]:
            for download in (0, 1):
                resp = await http.get(url, params={"path": path, "download": download})
                msg = is_error(resp, 400)
                assert words in msg, (path, msg)
                assert b"root:" not in resp.content and b"the host's secret" not in resp.content
        assert "does not exist" in is_error(await http.get(url, params={"path": "src/nope.txt"}), 404)
        assert "does not exist" in is_error(await http.get(url, params={"path": "nope/x.txt"}), 404)
        is_error(await http.get(url), 422)  # path is required

        # the server still answers after the FIFO was asked for
        assert (await http.get(url, params={"path": "README.md"})).status_code == 200


async def test_unknown_task_and_task_without_workspace_are_404(client, store, settings):
    bare = await new_task(store)  # a task whose worker has not made its workspace
    async with served(settings, client, store) as http:
        for tid in (str(uuid.uuid4()), "not-a-task"):
            for route in ("files", "files/content?path=a", "archive"):
                assert "no task" in is_error(await http.get(f"/api/tasks/{tid}/{route}"), 404)
        for route in ("files", "files/content?path=a", "archive"):
            assert "no workspace" in is_error(await http.get(f"/api/tasks/{bare}/{route}"), 404)
    assert not settings.workspace_for(bare).exists()  # reading never creates it


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


async def test_the_archive_has_folders_and_files_only_never_a_link_or_git(client, store, settings, workspace):
    tid = await new_task(store)
    workspace(tid)
    async with served(settings, client, store) as http:
        resp = await http.get(f"/api/tasks/{tid}/archive")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/gzip"
        assert f'filename="task-{tid}.tar.gz"' in resp.headers["content-disposition"]
    got = members(resp.content)
    top = f"task-{tid}"
    for name, m in got.items():
        assert name == top or name.startswith(top + "/"), name
        assert not name.startswith("/") and ".." not in name.split("/"), name
        assert m.isfile() or m.isdir(), (name, m.type)  # no symlink, hard link, FIFO or device member
        assert m.mode & 0o7000 == 0  # no setuid, setgid or sticky bit
    rel = {name.removeprefix(top + "/") for name in got if name != top}
    assert rel == {
        "src",
        "src/deep",
        "src/app.py",
        "src/deep/leaf.txt",
        "README.md",
        "blob.bin",
        "big.txt",
        NEWLINE_NAME,
        UNICODE_NAME,
        "bad\udcff.txt",  # the name's own bytes, kept
    }
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:

        def read(name: str) -> bytes:
            f = tar.extractfile(f"{top}/{name}")
            assert f is not None
            return f.read()

        assert read("big.txt") == BIG and read("blob.bin") == BINARY
        assert read("src/deep/leaf.txt") == b"leaf\n" and read(NEWLINE_NAME) == b"newline name\n"
    tar_bytes = gzip.decompress(resp.content)
    for leaked in (b"the host's secret", b"root:x:0", b"fsmonitor"):  # hard link, /etc/passwd link, .git/config
        assert leaked not in tar_bytes
    # extracted with the strictest filter, it lands beneath the target
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
        dest = settings.workspace_root.parent / f"extract-{tid}"
        tar.extractall(dest, filter="data")
    assert (dest / top / "src" / "deep" / "leaf.txt").read_text() == "leaf\n"


async def test_caps_answer_413_before_a_byte_is_sent(client, store, settings, workspace, monkeypatch):
    tid = await new_task(store)
    workspace(tid)
    monkeypatch.setattr(workspace_files, "MAX_ARCHIVE_BYTES", 1000)
    monkeypatch.setattr(workspace_files, "MAX_DOWNLOAD_BYTES", 1000)
    monkeypatch.setattr(workspace_files, "MAX_LIST_ENTRIES", 3)
    async with served(settings, client, store) as http:
        assert "more than" in is_error(await http.get(f"/api/tasks/{tid}/archive"), 413)
        big = await http.get(f"/api/tasks/{tid}/files/content", params={"path": "big.txt", "download": 1})
        assert "more than" in is_error(big, 413)
        listing = (await http.get(f"/api/tasks/{tid}/files")).json()
        assert listing["truncated"] is True and [e["name"] for e in listing["entries"]] == [".git", "src", "README.md"]


async def test_the_token_guards_the_workspace(client, store, settings_with, tmp_path):
    settings = settings_with(MORGUS_API_TOKEN=TOKEN)
    tid = await new_task(store)
    ws = settings.workspace_for(tid)
    ws.mkdir(parents=True)
    (ws / "a.txt").write_text("a\n")
    routes = [f"/api/tasks/{tid}/files", f"/api/tasks/{tid}/files/content?path=a.txt", f"/api/tasks/{tid}/archive"]
    async with served(settings, client, store) as http:
        for route in routes:
            assert "Bearer" in is_error(await http.get(route), 401)
            assert "Bearer" in is_error(await http.get(route, headers={"Authorization": "Bearer wrong"}), 401)
            assert (await http.get(route, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
    open_settings = settings_with()
    assert not open_settings.api_token
    async with served(open_settings, client, store) as http:
        ws2 = open_settings.workspace_for(tid)
        ws2.mkdir(parents=True, exist_ok=True)
        (ws2 / "a.txt").write_text("a\n")
        for route in routes:
            assert (await http.get(route)).status_code == 200


def open_fds_under(folder: Path) -> list[str]:
    """The paths this process (the server runs in it) holds open beneath `folder`."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held


async def test_a_client_that_leaves_mid_download_leaves_no_descriptor_open(client, store, settings):
    tid = await new_task(store)
    ws = settings.workspace_for(tid)
    ws.mkdir(parents=True)
    with open(ws / "huge.bin", "wb") as f:
        f.truncate(512 << 20)  # sparse: far more than the socket buffers hold, so the server is mid-stream
    async with served(settings, client, store) as http:
        async with http.stream(
            "GET", f"/api/tasks/{tid}/files/content", params={"path": "huge.bin", "download": 1}
        ) as resp:
            assert resp.status_code == 200
            async for chunk in resp.aiter_bytes():
                assert chunk.strip(b"\0") == b""
                break  # and hang up

        async def released() -> bool:
            return not await asyncio.to_thread(open_fds_under, ws)

        await wait_for(released, what="the download's descriptor to be closed")
        assert (await http.get(f"/api/tasks/{tid}/files")).json()["entries"][0]["name"] == "huge.bin"
