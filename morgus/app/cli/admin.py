"""Maintenance command groups: `morgus db`, `morgus sandbox` and `morgus local-model`."""

from __future__ import annotations

import time

import typer

from morgus.app.cli.common import out, say, settings
from morgus.config import ConfigError

db_app = typer.Typer(no_args_is_help=True, help="Database maintenance.")
sandbox_app = typer.Typer(no_args_is_help=True, help="The sandbox image and containers.")
local_app = typer.Typer(no_args_is_help=True, help="The local model (llama.cpp's llama-server on loopback).")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the SQL migrations in morgus/db/migrations to DATABASE_URL (or the embedded Postgres)."""
    from morgus.db.migrate import apply_migrations

    applied = apply_migrations(settings().dsn)
    out.print(f"applied: {', '.join(applied)}" if applied else "database is up to date")


@sandbox_app.command("build")
def sandbox_build(
    force: bool = typer.Option(False, help="Rebuild even if the recipe's image exists."),
    mirror: str | None = typer.Option(None, help="Debian mirror (default: MORGUS_DEBIAN_MIRROR or deb.debian.org)."),
) -> None:
    """Build the sandbox image offline from Debian packages (debootstrap + docker import); needs root and dockerd."""
    from morgus.sandbox.image import build_offline, image_exists, image_tag

    mirror = mirror or settings().debian_mirror
    tag = image_tag()
    if image_exists(tag) and not force:
        out.print(f"{tag} is up to date")
        return
    out.print(f"building {tag} (debootstrap + apt, a few minutes)…")
    try:
        out.print(f"built {build_offline(mirror=mirror, force=force)}")
    except RuntimeError as e:
        raise ConfigError(f"sandbox image build failed: {e}") from None


@sandbox_app.command("list")
def sandbox_list() -> None:
    """List the sandboxes Morgus manages on this host."""
    from morgus.sandbox.base import SandboxUnavailable, select_backend
    from morgus.sandbox.pool import pooled

    try:
        backend = pooled(settings(), select_backend(settings()))  # claimed pooled sandboxes too
    except SandboxUnavailable as e:
        raise ConfigError(str(e)) from None
    for sb in backend.list_managed():
        out.print(f"{sb.name}  {sb.workflow_id}  {'running' if backend.alive(sb.name) else 'stopped'}")


@local_app.command("prepare")
def local_prepare() -> None:
    """Join and checksum the weights and build llama-server, once, into MORGUS_HOME (never at task time)."""
    from morgus.local_model import prepare

    binary, model, alias = prepare(settings(), progress=say)
    out.print(f"ready: {alias}\n  server  {binary}\n  model   {model}")


@local_app.command("serve")
def local_serve() -> None:
    """Serve the local model on loopback until Ctrl-C (for OPENAI_BASE_URL by hand or `morgus eval`)."""
    from morgus.local_model import start_local_model

    server = start_local_model(settings(), progress=say)
    out.print(
        f"serving {server.alias} at {server.url}  (OPENAI_BASE_URL={server.url} MORGUS_MODEL={server.alias}; Ctrl-C stops)"
    )
    try:
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
