"""Configuration reaches the code through Settings only: no module reads os.environ at call time; the sandbox
backend, the policy and the tools take what Settings validated. Plus the Docker ping bound and the quoting of
cloudflare_deploy's wrangler command, both against the real thing (a socket, a real container)."""

from __future__ import annotations

import ast
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from morgus.activities.tools import REGISTRY, ToolContext, ToolError
from morgus.config import POLICY_RULES, Settings
from morgus.contracts import Phase, SandboxOptions, SandboxRef
from morgus.sandbox.base import SandboxUnavailable, select_backend
from morgus.sandbox.output import CappedOutput
from morgus.sandbox.policy import RULES, check_command

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["morgus", "bench"]
CF_ACCOUNT = "0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------- no environment reads outside Settings


def _env_reads(path: Path) -> list[str]:
    """Every os.environ / os.getenv use in `path`, except `{**os.environ, ...}`: building a subprocess's
    environment from this one is allowed (the child reads its own Settings)."""
    tree = ast.parse(path.read_text(), str(path))
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            allowed.update(id(v) for k, v in zip(node.keys, node.values, strict=True) if k is None)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(a.name in ("environ", "getenv", "environb") for a in node.names)
        ):
            found.append(f"{path.name}:{node.lineno}: from os import environ/getenv")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb", "putenv")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and id(node) not in allowed
        ):
            found.append(f"{path.name}:{node.lineno}: os.{node.attr}")
    return sorted(found, key=lambda h: int(h.split(":")[1]))


def test_no_module_reads_the_environment_outside_settings():
    files: list[Path] = []
    for name in SOURCES:
        p = ROOT / name
        files += [p] if p.is_file() else [f for f in p.rglob("*.py") if "node_modules" not in f.parts]
    assert len(files) > 20
    found = [hit for f in files if f != ROOT / "morgus" / "config.py" for hit in _env_reads(f)]
    assert found == [], "read it from Settings (morgus/config.py) instead:\n" + "\n".join(found)


def test_the_env_read_finder_finds_what_it_must(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom os import getenv\na = os.environ.get('X')\nb = os.getenv('Y')\n"
        "c = os.environ['Z']\nd = {**os.environ, 'K': 'v'}\n"
    )
    hits = _env_reads(probe)
    assert [h.split(":")[1] for h in hits] == ["2", "3", "4", "5"]


# ---------------------------------------------------------------- policy


def test_policy_rule_names_have_one_source_and_each_is_a_real_check():
    assert RULES is POLICY_RULES
    examples = {
        "rm-root": "rm -rf /",
        "mkfs": "mkfs.ext4 /dev/sda1",
        "dd-device": "dd if=/dev/zero of=/dev/sda",
        "fork-bomb": ":(){ :|:& };:",
        "device-redirect": "cat x > /dev/sda",
    }
    assert set(examples) == set(RULES)
    for rule, command in examples.items():
        denied = check_command(command)
        assert denied is not None and denied.rule in RULES
        # turning that one rule off lets this command through (each example trips exactly its own rule)
        assert check_command(command, frozenset({rule})) is None, rule


def test_policy_allow_comes_from_settings_not_the_environment(monkeypatch):
    monkeypatch.setenv("MORGUS_POLICY_ALLOW", "all")  # too late: Settings was read at start
    assert check_command("rm -rf /") is not None
    s = Settings(MORGUS_POLICY_ALLOW="rm-root, mkfs")  # type: ignore[call-arg]
    assert s.policy_allowed == {"rm-root", "mkfs"}
    assert check_command("rm -rf /", s.policy_allowed) is None
    assert check_command(":(){ :|:& };:", s.policy_allowed).rule == "fork-bomb"  # type: ignore[union-attr]
    assert s.model_copy(update={"policy_allow": "all"}).policy_allowed == {"all"}
    assert check_command(":(){ :|:& };:", frozenset({"all"})) is None


async def test_shell_exec_applies_the_settings_policy(settings):
    ctx = ToolContext(task_id=str(uuid.uuid4()), phase=Phase.BUILD, settings=settings)
    spec = REGISTRY["shell_exec"]
    with pytest.raises(ToolError, match="rm-root"):
        await spec.run(ctx, spec.args(command="rm -rf /"))  # type: ignore[misc]
    ctx.settings = settings.model_copy(update={"policy_allow": "rm-root"})
    with pytest.raises(ToolError, match="no sandbox is available"):  # past the policy, stopped by the missing sandbox
        await spec.run(ctx, spec.args(command="rm -rf /"))  # type: ignore[misc]


# ---------------------------------------------------------------- sandbox backend from Settings


def test_select_backend_follows_settings(monkeypatch):
    monkeypatch.setenv("MORGUS_SANDBOX", "docker")  # too late: only Settings counts
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    backend = select_backend(Settings(MORGUS_SANDBOX="bwrap"))  # type: ignore[call-arg]
    assert backend.name == "bwrap"


def test_a_hung_docker_daemon_fails_fast_with_a_clear_error(tmp_path):
    from morgus.sandbox.docker_backend import DockerBackend

    # a socket that accepts connections (the kernel's backlog) and never answers: a hung dockerd
    path = Path(tempfile.mkdtemp(prefix="morgus-dock-")) / "hung.sock"
    hung = socket.socket(socket.AF_UNIX)
    hung.bind(str(path))
    hung.listen(8)
    try:
        with pytest.raises(SandboxUnavailable, match=r"did not answer within 0\.5 s.*MORGUS_SANDBOX=bwrap"):
            DockerBackend(base_url=f"unix://{path}", ping_timeout_s=0.5)
    finally:
        hung.close()
        shutil.rmtree(path.parent, ignore_errors=True)
    with pytest.raises(SandboxUnavailable, match="does not answer.*start dockerd"):
        DockerBackend(base_url=f"unix://{tmp_path}/absent.sock", ping_timeout_s=0.5)


# ---------------------------------------------------------------- cloudflare_deploy's command line


HOSTILE_DIRECTORIES = [
    "x'$(touch /workspace/pwned-1)'",  # Python's repr() puts this in double quotes: bash would run it
    "$(touch /workspace/pwned-2)",
    "`touch /workspace/pwned-3`",
    "a b; touch /workspace/pwned-4",
    "--help",  # wrangler would read it as an option
    "dist\n touch /workspace/pwned-5",
    '"; touch /workspace/pwned-6; "',
]


@pytest.fixture
def egress_box(settings):
    try:
        from morgus.sandbox.docker_backend import DockerBackend
        from morgus.sandbox.image import image_exists

        backend = DockerBackend(settings.sandbox_image)
    except SandboxUnavailable as e:
        pytest.skip(f"docker backend not available here: {e}")
    if not image_exists(backend.image):
        pytest.skip(f"sandbox image {backend.image} not built (run `morgus sandbox build`)")
    task_id = f"t{uuid.uuid4().hex[:12]}"
    ws = Path(tempfile.mkdtemp(prefix="morgus-ws-"))  # under /tmp: the sandbox user must reach it
    ws.chmod(0o755)
    name = backend.ensure(task_id, f"task-{task_id}", ws, SandboxOptions(network="egress"), "test-queue")
    # Cloudflare is out of reach in tests: a stand-in `wrangler` first on the login shell's PATH records its argv
    # (NUL-separated) and prints the URL the real one would. It lives in /workspace: Docker's tmpfs is noexec.
    fake = (
        "mkdir -p /workspace/.bin && echo 'PATH=/workspace/.bin:$PATH' > ~/.profile && "
        "printf '%s\\n' '#!/bin/sh' 'printf \"%s\\0\" \"$@\" > /workspace/wrangler-argv' "
        "'echo \"Deployment complete: https://abc123.bakery.pages.dev\"' > /workspace/.bin/wrangler && "
        "chmod +x /workspace/.bin/wrangler"
    )
    sink = CappedOutput()
    assert backend.exec(name, fake, timeout_s=30, env={}, sink=sink).exit_code == 0, sink.stderr()
    yield backend, name, ws, task_id
    backend.remove(name)
    shutil.rmtree(ws, ignore_errors=True)


@pytest.mark.parametrize("directory", HOSTILE_DIRECTORIES)
async def test_cloudflare_deploy_passes_a_hostile_directory_as_one_argument(settings, egress_box, directory):
    backend, name, ws, task_id = egress_box
    settings = settings.model_copy(
        update={"cloudflare_api_token": "cf-token-secret", "cloudflare_account_id": CF_ACCOUNT}
    )
    ctx = ToolContext(
        task_id=task_id,
        phase=Phase.EXECUTE,
        settings=settings,
        backend=backend,
        sandbox=SandboxRef(name=name, host_queue="test-queue", backend="docker", network="egress"),
    )
    spec = REGISTRY["cloudflare_deploy"]
    out: Any = await spec.run(ctx, spec.args(directory=directory, project_name="bakery"))  # type: ignore[misc]
    argv = (ws / "wrangler-argv").read_bytes().split(b"\0")[:-1]
    assert [a.decode() for a in argv] == [
        "pages",
        "deploy",
        f"./{directory}",
        "--project-name",
        "bakery",
        "--branch",
        "main",
    ]
    assert sorted(p.name for p in ws.iterdir()) == [".bin", "wrangler-argv"], "a name in the directory ran as a command"
    assert "https://abc123.bakery.pages.dev" in out.content and "cf-token-secret" not in out.content


async def test_cloudflare_deploy_refuses_paths_leaving_the_workspace(settings):
    settings = settings.model_copy(update={"cloudflare_api_token": "t", "cloudflare_account_id": CF_ACCOUNT})
    ctx = ToolContext(task_id=str(uuid.uuid4()), phase=Phase.EXECUTE, settings=settings)
    spec = REGISTRY["cloudflare_deploy"]
    for bad in ["../other-task", "/etc", "~/x", "a/../../b"]:
        with pytest.raises(ToolError, match="absolute|'\\.\\.'"):
            await spec.run(ctx, spec.args(directory=bad, project_name="bakery"))  # type: ignore[misc]
    with pytest.raises(ValidationError):  # the project name is a pattern: no quote, space or option can get in
        spec.args(directory="dist", project_name="x; touch /workspace/pwned")
