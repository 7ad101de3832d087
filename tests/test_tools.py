"""git, web research and deploy tools against real git, a real `git daemon` and real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from typing import Any

import git
import httpx
import pytest

from morgus.activities.tools import ToolError
from morgus.activities.tools.web import check_url
from morgus.contracts import TaskResult
from tests.conftest import free_port, start, task_id_of
from tests.helpers.tools import call, call_output, ctx_for, http_server


def responder(routes: dict[str, tuple[int, dict[str, str], bytes]], seen: list | None = None) -> type:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def _answer(self) -> None:
            if seen is not None:
                seen.append((self.command, self.path, dict(self.headers)))
            path = self.path.split("?")[0]
            status, headers, body = routes.get(path, (404, {}, b"not found"))
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    return H


# ---------------------------------------------------------------- git


async def test_git_init_add_commit_push_to_a_bare_repository_and_over_git_daemon(settings, tmp_path):
    settings = settings.model_copy(update={"git_author": "Morgus Bot <bot@example.com>"})
    bare = tmp_path / "remote.git"
    git.Repo.init(bare, bare=True)
    ctx = ctx_for(settings, task_id="00000000-0000-0000-0000-0000000000b1", repo_url=str(bare))
    (ctx.workspace / "app.py").write_text("print('hi')\n")
    assert "initialised" in await call("git_init", ctx)
    assert "already" in await call("git_init", ctx)
    assert "app.py" in await call("git_add", ctx, paths=["."])
    message = 'Add app: it\'s "quoted"\n\nSecond paragraph with $HOME and `backticks`.'
    assert "committed" in await call("git_commit", ctx, message=message)
    assert "nothing to commit" in await call("git_commit", ctx, message="again")
    out = await call_output("git_push", ctx)
    assert "pushed" in out.content and out.artifacts[0].type == "repository" and out.artifacts[0].url == str(bare)
    pushed = git.Repo(bare).commit("main")
    assert pushed.message == message and pushed.author.email == "bot@example.com"

    # the same over the git protocol, to a daemon on loopback
    served = tmp_path / "served"
    git.Repo.init(served / "proj.git", bare=True)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={served}",
            "--export-all",
            "--enable=receive-pack",
            f"--port={port}",
            "--listen=127.0.0.1",
            str(served),
        ]
    )
    try:
        await asyncio.sleep(0.5)
        ctx.repo_url = f"git://127.0.0.1:{port}/proj.git"
        out = await call_output("git_push", ctx, remote="daemon", branch="release")
        assert "pushed" in out.content
    finally:
        daemon.terminate()
        daemon.wait()
    assert git.Repo(served / "proj.git").commit("release").message == message


async def test_push_token_goes_only_into_the_push_and_never_into_errors(settings):
    token = "ghp_SECRETtoken1234567890"
    settings = settings.model_copy(update={"git_token": token})
    seen: list = []
    with http_server(responder({}, seen)) as base:
        ctx = ctx_for(settings, task_id="00000000-0000-0000-0000-0000000000b2", repo_url=f"{base}/org/repo.git")
        (ctx.workspace / "f.txt").write_text("x")
        await call("git_init", ctx)
        await call("git_add", ctx)
        await call("git_commit", ctx, message="one")
        with pytest.raises(ToolError) as info:
            await call("git_push", ctx)
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert any(h.get("Authorization") == expected for _, _, h in seen), "the token was not sent with the push"
    assert token not in str(info.value) and "git push failed" in str(info.value)
    config = (settings.git_root / f"{ctx.task_id}.git" / "config").read_text()
    assert token not in config and base64.b64encode(token.encode()).decode() not in config


async def test_push_without_a_remote_is_a_clear_error(settings):
    settings = settings.model_copy(update={"git_remote": None})
    ctx = ctx_for(settings, task_id="00000000-0000-0000-0000-0000000000b3")
    await call("git_init", ctx)
    with pytest.raises(ToolError, match="no remote is configured"):
        await call("git_push", ctx)
    with pytest.raises(ToolError, match="call git_init first"):
        await call("git_add", ctx_for(settings, task_id="00000000-0000-0000-0000-0000000000b4"))


async def test_token_never_reaches_steps_history_or_database_in_a_task(
    client, store, settings, llm, tmp_path, monkeypatch, worker_for
):

    token = "ghp_NEVERshowTHIS0987654321"
    settings = settings.model_copy(update={"git_token": token})
    bare = tmp_path / "task-remote.git"
    git.Repo.init(bare, bare=True)
    marker = llm.add(
        "git-task",
        [
            {"content": "research done"},
            {"content": "plan done"},
            {
                "content": None,
                "tool_calls": [
                    {"name": "file_write", "arguments": {"path": "README.md", "content": "# hi\n"}},
                    {"name": "git_init", "arguments": {}},
                    {"name": "git_add", "arguments": {}},
                    {"name": "git_commit", "arguments": {"message": "First 'commit'\n\nbody"}},
                ],
            },
            {"content": "build done"},
            {"content": "execute done"},
            {"content": None, "tool_calls": [{"name": "git_push", "arguments": {}}]},
            {"content": "pushed"},
        ],
    )
    async with worker_for(settings):
        handle = await start(client, settings, marker, repo_url=str(bare))
        result: TaskResult = await handle.result()
    assert result.status == "completed"
    task_id = task_id_of(handle)
    assert git.Repo(bare).commit("main").message == "First 'commit'\n\nbody"
    artifacts = await store.fetch_artifacts(task_id)
    assert [a["type"] for a in artifacts] == ["repository"] and artifacts[0]["url"] == str(bare)
    dump = json.dumps(
        [
            await store.fetch_task(task_id),
            await store.fetch_steps(task_id),
            artifacts,
            [m.model_dump() for m in await store.load_messages(task_id, 10_000)],
        ],
        default=str,
    )
    history = (await handle.fetch_history()).to_json()
    assert token not in dump and token not in history


# ---------------------------------------------------------------- search


SEARXNG = {
    "query": "bakery",
    "results": [
        {"url": "https://example.com/a", "title": "Bakery A", "content": "Fresh bread", "engine": "duckduckgo"},
        {"url": "https://example.com/b", "title": "Bakery B", "content": "Cakes", "engine": "bing"},
    ],
}
BRAVE = {
    "type": "search",
    "query": {"original": "bakery"},
    "web": {
        "type": "search",
        "results": [
            {
                "title": "Brave Bakery",
                "url": "https://brave.example/bakery",
                "description": "Best <strong>bakery</strong>",
            }
        ],
    },
}
DDG = b"""<html><body><div class="results">
<div class="result results_links results_links_deep web-result"><div class="links_main links_deep result__body">
<h2 class="result__title"><a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fddg.example%2Fone&amp;rut=abc">DDG One</a></h2>
<a class="result__snippet" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fddg.example%2Fone">First <b>snippet</b></a></div></div>
<div class="result results_links results_links_deep web-result"><div class="links_main links_deep result__body">
<h2 class="result__title"><a rel="nofollow" class="result__a" href="https://ddg.example/two">DDG Two</a></h2>
<a class="result__snippet">Second snippet</a></div></div></div></body></html>"""


@pytest.mark.parametrize("provider", ["searxng", "brave", "duckduckgo"])
async def test_each_search_provider_speaks_its_real_format(settings, provider):
    seen: list = []
    routes = {
        "/search": (200, {"Content-Type": "application/json"}, json.dumps(SEARXNG).encode()),
        "/res/v1/web/search": (200, {"Content-Type": "application/json"}, json.dumps(BRAVE).encode()),
        "/html/": (200, {"Content-Type": "text/html"}, DDG),
    }
    with http_server(responder(routes, seen)) as base:
        configured = settings.model_copy(
            update={
                "search_provider": provider,
                "searxng_url": base,
                "brave_url": base,
                "brave_api_key": "brave-key",
                "duckduckgo_url": base,
            }
        )
        out = await call("search_web", ctx_for(configured), query="bakery", max_results=5)
    expected = {
        "searxng": ["Bakery A", "https://example.com/a", "Fresh bread", "Bakery B"],
        "brave": ["Brave Bakery", "https://brave.example/bakery"],
        "duckduckgo": ["DDG One", "https://ddg.example/one", "First snippet", "DDG Two", "https://ddg.example/two"],
    }[provider]
    for text in expected:
        assert text in out
    if provider == "brave":
        assert seen[0][2].get("X-Subscription-Token") == "brave-key"
    if provider == "searxng":
        assert "format=json" in seen[0][1]


# ---------------------------------------------------------------- fetch


PAGE = b"""<!doctype html><html><head><title>Crumb &amp; Co. | Bakery</title><style>body{}</style>
<script>var tracking = 1;</script></head><body><header><nav><a href="/">Home</a></nav></header>
<main><h1>Sourdough daily</h1><p>We bake at <em>dawn</em>.</p><a href="/menu">Our menu</a></main>
<footer>cookie banner</footer></body></html>"""


async def test_fetch_extracts_readable_text_follows_redirects_and_caps_size(settings):
    settings = settings.model_copy(update={"fetch_allow": "127.0.0.1/32"})
    routes = {
        "/page": (200, {"Content-Type": "text/html; charset=utf-8"}, PAGE),
        "/r1": (302, {"Location": "/r2"}, b""),
        "/r2": (301, {"Location": "/r3"}, b""),
        "/r3": (307, {"Location": "/page"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/big": (200, {"Content-Type": "text/plain"}, b"a" * (3 * 1024 * 1024)),
        "/bin": (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"\0" * 100),
        "/private": (302, {"Location": "http://10.1.2.3/secret"}, b""),
    }
    with http_server(responder(routes)) as base:
        ctx = ctx_for(settings)
        out = await call("fetch_url", ctx, url=f"{base}/r1")
        assert f"URL: {base}/page" in out and "Title: Crumb & Co. | Bakery" in out
        assert "Sourdough daily" in out and "We bake at" in out and f"Our menu: {base}/menu" in out
        assert "tracking" not in out and "cookie banner" not in out
        with pytest.raises(ToolError, match="too many redirects"):
            await call("fetch_url", ctx, url=f"{base}/loop")
        big = await call("fetch_url", ctx, url=f"{base}/big")
        assert "only the first 2097152 bytes were read" in big and "truncated at 20000 characters" in big
        assert "binary content" in await call("fetch_url", ctx, url=f"{base}/bin")
        with pytest.raises(ToolError, match="10.1.2.3"):  # allowed host, but its redirect goes private
            await call("fetch_url", ctx, url=f"{base}/private")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://172.16.0.5/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
        "ftp://example.com/",
    ],
)
async def test_ssrf_targets_are_refused_by_default(url):
    with pytest.raises(ToolError):
        await check_url(url)


async def test_fetch_tool_uses_the_settings_allow_list_not_the_environment(settings, monkeypatch):
    """MORGUS_FETCH_ALLOW counts as read once into Settings: setting it later in the environment opens nothing."""
    monkeypatch.setenv("MORGUS_FETCH_ALLOW", "127.0.0.1/32")
    with http_server(responder({"/": (200, {"Content-Type": "text/plain"}, b"inside")})) as base:
        with pytest.raises(ToolError, match="private/loopback"):
            await call("fetch_url", ctx_for(settings), url=base + "/")
        allowed = settings.model_copy(update={"fetch_allow": "127.0.0.1/32"})
        assert "inside" in await call("fetch_url", ctx_for(allowed), url=base + "/")


# ---------------------------------------------------------------- deploy and notify


async def test_a_task_deploys_a_site_locally_and_the_url_serves_it(client, store, settings, llm, worker_for):
    from morgus.activities.tools.deploy import sites_url
    from morgus.app.sites import serve_sites

    server = serve_sites(settings.home.resolve() / "sites", f"http://127.0.0.1:{free_port()}")
    url_base = f"http://127.0.0.1:{server.server_address[1]}"
    settings = settings.model_copy(update={"sites_url": url_base})
    try:
        marker = llm.add(
            "deploy",
            [
                {"content": "research done"},
                {"content": "plan done"},
                {
                    "content": None,
                    "tool_calls": [
                        {
                            "name": "file_write",
                            "arguments": {"path": "dist/index.html", "content": "<h1>Crumb &amp; Co.</h1>"},
                        },
                        {"name": "file_write", "arguments": {"path": "dist/css/site.css", "content": "h1{color:navy}"}},
                    ],
                },
                {"content": "build done"},
                {
                    "content": None,
                    "tool_calls": [
                        {"name": "deploy_local", "arguments": {"directory": "src"}},
                        {"name": "deploy_local", "arguments": {"directory": "dist"}},
                    ],
                },
                {"content": "deployed"},
            ],
        )
        async with worker_for(settings):
            handle = await start(client, settings, marker)
            result: TaskResult = await handle.result()
        assert sites_url(settings) == url_base
    finally:
        server.shutdown()
        server.server_close()
    task_id = task_id_of(handle)
    assert result.status == "completed"
    artifacts = await store.fetch_artifacts(task_id)
    assert len(artifacts) == 1 and artifacts[0]["type"] == "deployment"
    url = artifacts[0]["url"]
    assert url == f"{url_base}/{task_id}/"
    tool_msgs = [m["content"] for m in llm.requests_for("deploy")[-1].body["messages"] if m["role"] == "tool"]
    assert "not a folder" in tool_msgs[2] and url in tool_msgs[3]
    server = serve_sites(settings.home.resolve() / "sites", url_base)  # the site outlives the task
    try:
        async with httpx.AsyncClient() as http:
            page = await http.get(url)
            css = await http.get(url + "css/site.css")
    finally:
        server.shutdown()
        server.server_close()
    assert page.status_code == 200 and "<h1>Crumb &amp; Co.</h1>" in page.text
    assert css.text == "h1{color:navy}"


async def test_cloudflare_deploy_without_credentials_says_what_to_do(settings):
    settings = settings.model_copy(update={"cloudflare_api_token": None, "cloudflare_account_id": None})
    with pytest.raises(ToolError, match="CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID.*deploy_local"):
        await call("cloudflare_deploy", ctx_for(settings), directory="dist", project_name="bakery")


async def test_notify_webhook_is_retried_and_the_step_written_once(client, store, settings, llm, worker_for):

    posts: list = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def do_POST(self) -> None:
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(503 if len(posts) == 1 else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with http_server(Hook) as base:
        settings = settings.model_copy(update={"notify_webhook": f"{base}/hook"})
        marker = llm.add(
            "webhook",
            [{"content": None, "tool_calls": [{"name": "notify_user", "arguments": {"message": "Deployed!"}}]}],
        )
        async with worker_for(settings):
            handle = await start(client, settings, marker)
            assert (await handle.result()).status == "completed"
    assert [p["text"] for p in posts] == ["Deployed!", "Deployed!"]
    steps = await store.fetch_steps(task_id_of(handle))
    assert [s["content"] for s in steps if s["type"] == "NOTIFICATION"] == ["Deployed!"]


def test_git_is_installed():
    assert shutil.which("git"), "git is needed by the git tools"


async def test_deploy_of_a_missing_folder_names_the_folders_that_hold_a_site(settings, tmp_path):
    """A 1.5B model deployed `dist` (no such folder), read "build the site first" and ended EXECUTE with its site in
    `site/`: the error names the folders with an index.html, found without following a link."""
    ctx = ctx_for(settings)
    ws = settings.workspace_for(ctx.task_id)
    with pytest.raises(ToolError, match="no folder holds an index.html yet"):
        await call("deploy_local", ctx, directory="dist")
    (ws / "site").mkdir(parents=True)
    (ws / "site" / "index.html").write_text("<h1>hi</h1>")
    (ws / "docs\nx").mkdir()
    (ws / "docs\nx" / "index.html").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "index.html").write_text("secret")
    (ws / "linked").symlink_to(outside)
    with pytest.raises(ToolError) as e:
        await call("deploy_local", ctx, directory="dist")
    message = str(e.value)
    assert "'dist' is not a folder in the workspace; folders with an index.html:" in message
    assert "site" in message and "linked" not in message and "\n" not in message
