"""The console's Files panel, diffs, commits, live preview and dashboard in real headless Chromium, against the real
stack (API with a token, worker, Postgres, scripted LLM, the static sites server).

A scripted task writes a small site (one file twice), deploys it and commits; then bytes a sandboxed command could
just as well have written are added to its workspace (a PNG, a 1.5 MiB text, a name that is not UTF-8, one that is
HTML, one with a right-to-left override, a link out of the workspace). A second task (a priced model) waits for the
user's answer. console/e2e/files.e2e.mjs browses the files with the token set, downloads one file and the archive,
opens the second write's diff, reads the commits, looks at the highlighted file and the sandboxed preview, then
uses the dashboard with the keyboard, at desktop and phone widths, and answers the waiting task through the API to
see the counts move without a reload. Needs Debian's chromium and a built console (.ci/run does both); skipped
otherwise. Screenshots go to docs/screenshots/ (files-*, task-diff, task-gitlog, file-highlight, dashboard*).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from tests.conftest import ask, free_port, start, task_id_of, wait_for, wait_task_status
from tests.helpers.api import served
from tests.helpers.console_e2e import assert_screenshots, chromium_or_skip, run_e2e, screenshots

TOKEN = "files-e2e-token"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
SITE = (
    "<!doctype html><title>Crumb</title><h1>Crumb &amp; Co.</h1><p id=probe>no script ran</p>"
    "<script>let r = 'scripts run';"
    "try { parent.localStorage.getItem('morgus.token'); r += ', and read the console: LEAK'; }"
    " catch (e) { r += ', isolated from the console'; }"
    "document.getElementById('probe').textContent = r;</script>"
)
APP_V1 = 'const hours = { weekdays: "8-16" };\n\nexport function render(el) {\n  el.textContent = `Open ${hours.weekdays}`;\n}\n'
APP = (
    "// Opening hours, shown on the page.\n"
    'const hours = { weekdays: "7-18", saturday: "8-14" };\n\n'
    "export function render(el) {\n"
    "  el.textContent = `Open ${hours.weekdays}, Saturdays ${hours.saturday}`;\n"
    "  return el;\n"
    "}\n"
)
QUESTION = "Which opening hours should the page show: weekdays only, or Saturdays too?"


@pytest.fixture
def settings(settings):
    """The conftest settings with an API token and a sites server URL (the `worker` fixture runs with these)."""
    return settings.model_copy(update={"sites_url": f"http://127.0.0.1:{free_port()}", "api_token": TOKEN})


@pytest.fixture
def sites(settings):
    from morgus.app.sites import serve_sites

    server = serve_sites(settings.home.resolve() / "sites", settings.sites_url)
    yield settings.sites_url
    server.shutdown()
    server.server_close()


async def test_files_panel_and_preview_in_chromium(client, store, settings, worker, llm, sites, tmp_path):
    chromium_or_skip()
    marker = llm.add(
        "console-files",
        [
            {"content": "Research done."},
            {"content": "Plan: one page and a script."},
            {
                "content": None,
                "tool_calls": [
                    {"name": "file_write", "arguments": {"path": "dist/index.html", "content": SITE}},
                    {"name": "file_write", "arguments": {"path": "src/app.js", "content": APP_V1}},
                    {"name": "file_write", "arguments": {"path": "README.md", "content": "# Crumb & Co.\n"}},
                ],
            },
            {
                "content": None,
                "tool_calls": [{"name": "file_write", "arguments": {"path": "src/app.js", "content": APP}}],
            },
            {"content": "Built."},
            {"content": None, "tool_calls": [{"name": "deploy_local", "arguments": {"directory": "dist"}}]},
            {"content": "Deployed."},
            {
                "content": None,
                "tool_calls": [
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {
                        "name": "git_commit",
                        "arguments": {"message": "Bakery page with opening hours\n\nDeployed locally."},
                    },
                ],
            },
            {"content": "Done: deployed the bakery page."},
        ],
    )
    waiting = llm.add(
        "console-waits",
        [ask(QUESTION), {"content": "Research done."}, {"content": "Plan."}, {"content": "Built."}]
        + [{"content": "Executed."}, {"content": "Done."}],
    )
    handle = await start(client, settings, marker, title="Bakery files")
    assert (await handle.result()).status == "completed"
    tid = task_id_of(handle)
    # a priced model (the scripted server answers whatever the name): the dashboard shows its cost, not its tokens
    asking = await start(client, settings, waiting, title="Bakery hours question", model="gpt-4o")
    await wait_task_status(store, task_id_of(asking), "waiting_for_input")
    ws = settings.workspace_for(tid)
    (ws / "assets").mkdir()
    (ws / "assets" / "logo.png").write_bytes(PNG)
    (ws / "big.txt").write_text("a line of text\n" * 110_000)  # 1.57 MiB: the text view shows the first MiB
    (ws / "<img src=x onerror=alert(1)>.txt").write_text("named to be HTML\n")
    (ws / "invoice\u202efdp.exe").write_text("named to read as .pdf\n")  # a right-to-left override
    os.mkdir(os.fsencode(ws) + b"/bad\xffname")  # not UTF-8: listed escaped, not openable
    (ws / "passwd").symlink_to("/etc/passwd")
    downloads = tmp_path / "downloads"
    downloads.mkdir()

    async with served(settings, client, store) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}

        async def deployed() -> bool:
            arts = (await http.get(f"/api/tasks/{tid}/artifacts", headers=auth)).json()["artifacts"]
            return any(a["type"] == "deployment" for a in arts)

        await wait_for(deployed, what="the deployment artifact")
        assert (await http.get(f"/api/tasks/{tid}/files")).status_code == 401  # the token is needed, reads too
        out = await run_e2e(
            "files.e2e.mjs",
            str(http.base_url).rstrip("/"),
            tid,
            TOKEN,
            str(screenshots()),
            str(downloads),
            task_id_of(asking),
        )
    assert "e2e: done" in out
    assert (await asking.result()).status == "completed"  # answered from the page, through the API
    # what the browser saved is the workspace's bytes, fetched with the token
    assert hashlib.sha256((downloads / "logo.png").read_bytes()).digest() == hashlib.sha256(PNG).digest()
    with tarfile.open(fileobj=io.BytesIO((downloads / f"task-{tid}.tar.gz").read_bytes()), mode="r:gz") as tar:
        names = set(tar.getnames())
        app = tar.extractfile(f"task-{tid}/src/app.js")
        assert app is not None and app.read() == APP.encode()
    assert {f"task-{tid}/dist/index.html", f"task-{tid}/assets/logo.png"} <= names
    assert f"task-{tid}/passwd" not in names  # a link is left out, never followed
    assert_screenshots(
        *("files-tree", "files-text", "files-binary", "files-preview", "files-phone", "files-phone-preview"),
        *("task-diff", "task-gitlog", "file-highlight", "dashboard", "dashboard-phone"),
    )
