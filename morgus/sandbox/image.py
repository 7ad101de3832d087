"""The sandbox image: `morgus/sandbox/Dockerfile` for hosts with a registry, and an offline builder that makes the
equivalent image from Debian packages (debootstrap --variant=minbase, apt-get in the chroot, docker import).

The tag is a hash of the recipe, so the image is rebuilt only when the recipe changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

SUITE = "bookworm"
# python-is-python3: models write `python x.py` far more often than `python3` (a 1.5B model's EXECUTE got
# "python: command not found")
PACKAGES = (
    "bash",
    "coreutils",
    "procps",
    "ca-certificates",
    "git",
    "python3",
    "python3-pip",
    "python3-venv",
    "python-is-python3",
    "nodejs",
    "npm",
)
NPM_GLOBALS = ("wrangler@3",)
SANDBOX_USER = "morgus"
SANDBOX_UID = 1000
REPOSITORY = "morgus-sandbox"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What the image runs as; the container is started with `sleep infinity` under docker's init.
CHANGES = (
    f"USER {SANDBOX_UID}:{SANDBOX_UID}",
    "WORKDIR /workspace",
    f"ENV HOME=/home/{SANDBOX_USER} PATH=/home/{SANDBOX_USER}/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8",
    'CMD ["sleep", "infinity"]',
)


def recipe() -> dict:
    return {
        "suite": SUITE,
        "packages": sorted(PACKAGES),
        "npm": NPM_GLOBALS,
        "user": SANDBOX_USER,
        "uid": SANDBOX_UID,
        "changes": CHANGES,
        "v": 1,
    }


def image_tag() -> str:
    digest = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()[:12]
    return f"{REPOSITORY}:{digest}"


def configured_image(sandbox_image: str | None) -> str:
    """settings.sandbox_image (MORGUS_SANDBOX_IMAGE, e.g. one built from morgus/sandbox/Dockerfile) or the offline-built tag."""
    return sandbox_image or image_tag()


def image_exists(tag: str) -> bool:
    import docker
    from docker.errors import ImageNotFound

    try:
        docker.from_env().images.get(tag)
        return True
    except ImageNotFound:
        return False


def _run(cmd: list[str], log: Path, env: dict[str, str] | None = None, check: bool = True) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        # the build tools run with this process's environment (PATH, proxies), on purpose, plus `env`
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        tail = log.read_text(errors="replace")[-1500:]
        raise RuntimeError(f"{cmd[0]} failed (exit {proc.returncode}); last output:\n{tail}")


def _install_npm_globals(root: Path, log: Path) -> None:
    """npm packages the image ships (wrangler). The build trusts the host's CA bundle (a registry behind a TLS
    proxy), for the build only; the check is the tool itself, since Debian's npm 9 can exit non-zero on success."""
    # the CA bundle this Python trusts (the ssl module honours SSL_CERT_FILE itself), else Debian's
    host_ca = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    ca_env = []
    if host_ca.exists():
        shutil.copy(host_ca, root / "tmp/host-ca.crt")
        ca_env = ["NODE_EXTRA_CA_CERTS=/tmp/host-ca.crt", "npm_config_cafile=/tmp/host-ca.crt"]
    try:
        _run(
            [
                "chroot",
                str(root),
                "env",
                "HOME=/root",
                *ca_env,
                "npm",
                "install",
                "-g",
                "--no-audit",
                "--no-fund",
                *NPM_GLOBALS,
            ],
            log,
            check=False,
        )
        for package in NPM_GLOBALS:
            _run(["chroot", str(root), package.split("@")[0], "--version"], log)
    finally:
        (root / "tmp/host-ca.crt").unlink(missing_ok=True)
        shutil.rmtree(root / "root/.npm", ignore_errors=True)


def build_offline(*, mirror: str | None = None, force: bool = False, log: Path | None = None) -> str:
    """Build the image from Debian packages unless the recipe's tag already exists. Needs root, debootstrap, docker.
    `mirror`: the caller's choice (`--mirror`, else settings.debian_mirror), else deb.debian.org."""
    tag = image_tag()
    if not force and image_exists(tag):
        return tag
    for tool in ("debootstrap", "chroot", "tar"):
        if not shutil.which(tool):
            raise RuntimeError(f"`{tool}` is needed to build the sandbox image offline; apt-get install debootstrap")
    mirror = mirror or DEFAULT_MIRROR
    work = Path(tempfile.mkdtemp(prefix="morgus-image-"))
    log = log or work / "build.log"
    root = work / "rootfs"
    try:
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), mirror], log)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
        _run(["chroot", str(root), "apt-get", "update", "-qq"], log, apt_env)
        _run(
            ["chroot", str(root), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], log, apt_env
        )
        _run(["chroot", str(root), "apt-get", "clean"], log)
        _install_npm_globals(root, log)
        _run(
            [
                "chroot",
                str(root),
                "useradd",
                "--uid",
                str(SANDBOX_UID),
                "--create-home",
                "--shell",
                "/bin/bash",
                SANDBOX_USER,
            ],
            log,
        )
        (root / "workspace").mkdir(exist_ok=True)
        os.chown(root / "workspace", SANDBOX_UID, SANDBOX_UID)
        (root / "etc/resolv.conf").write_text("")
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        tarball = work / "rootfs.tar"
        _run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."], log)
        import docker

        repo, _, version = tag.partition(":")
        docker.from_env(timeout=600).api.import_image(
            src=str(tarball), repository=repo, tag=version, changes=list(CHANGES)
        )
        if not image_exists(tag):
            raise RuntimeError(f"docker import did not produce {tag}")
        return tag
    finally:
        shutil.rmtree(work, ignore_errors=True)
