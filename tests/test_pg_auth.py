"""The embedded Postgres is not open to other local users: every login needs a password, Morgus's own role is
unprivileged (no programs, no server files), the console role cannot log in, and an old trust-mode data
directory is converted on start. Real embedded Postgres throughout."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from morgus.db.embedded import PG_HBA, EmbeddedPostgres
from morgus.db.migrate import apply_migrations
from morgus.pgsecret import SecretFileError, ensure_secret, read_secret

from .conftest import free_port


def _refused(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(dsn, connect_timeout=5).close()
    return str(e.value)


def test_superuser_login_needs_the_secret(postgres: EmbeddedPostgres) -> None:
    tcp = f"host=127.0.0.1 port={postgres.port} dbname=postgres"
    sock = f"host={postgres.pgdata} port={postgres.port} dbname=postgres"
    for base in (tcp, sock):
        for who in ("postgres", "morgus", "morgus_console"):
            assert "no password supplied" in _refused(f"{base} user={who}")
            assert "password authentication failed" in _refused(f"{base} user={who} password=guess")
    # with the secret it works, over both
    secret = read_secret(postgres.superuser_secret_file)
    for base in (tcp, sock):
        with psycopg.connect(f"{base} user=postgres password={secret}") as conn:
            assert conn.execute("select rolsuper from pg_roles where rolname = current_user").fetchone() == (True,)
    assert (postgres.pgdata / "pg_hba.conf").read_text() == PG_HBA
    assert "trust" not in PG_HBA.split("nothing is trusted")[1]


def test_secret_files_are_private(postgres: EmbeddedPostgres) -> None:
    for path in (postgres.superuser_secret_file, postgres.app_secret_file):
        st = os.lstat(path)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert len(read_secret(path) or "") >= 40
    assert read_secret(postgres.superuser_secret_file) != read_secret(postgres.app_secret_file)


def test_unsafe_secret_files_are_refused(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        made = ensure_secret(tmp_path / "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o600 and ensure_secret(tmp_path / "new") == made

    planted = tmp_path / "planted"
    planted.write_text("attacker-chosen")
    (tmp_path / "link").symlink_to(planted)
    with pytest.raises(SecretFileError, match="symbolic link"):
        ensure_secret(tmp_path / "link")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SecretFileError, match="symbolic link"):
        ensure_secret(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()  # O_EXCL|O_NOFOLLOW never created the link's target
    for mode in (0o640, 0o604, 0o660):
        planted.chmod(mode)
        with pytest.raises(SecretFileError, match="readable by other users"):
            read_secret(planted)
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(SecretFileError, match="not a regular file"):
        read_secret(tmp_path / "fifo")  # and does not hang on it


def test_morgus_role_is_unprivileged(postgres: EmbeddedPostgres, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        assert conn.execute("select current_user").fetchone() == ("morgus",)
        row = conn.execute(
            "select rolsuper, rolcreaterole, rolcreatedb, rolbypassrls from pg_roles where rolname = 'morgus'"
        ).fetchone()
        assert row == (False, False, False, False)
        for role in ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files"):
            assert conn.execute("select pg_has_role('morgus', %s, 'member')", (role,)).fetchone() == (False,)
        attacks = [
            f"copy (select 1) to program 'touch {marker}'",
            f"copy tasks from program 'touch {marker}'",
            "copy tasks (title) from '/etc/passwd'",
            f"copy (select 1) to '{marker}'",
            "select pg_read_file('/etc/passwd')",
            "alter role morgus superuser",
            "create role intruder login password 'x'",
            "create extension if not exists adminpack",
            "alter system set archive_command = 'touch /tmp/x'",
        ]
        for statement in attacks:
            with pytest.raises((errors.InsufficientPrivilege, errors.FeatureNotSupported, errors.UndefinedFile)):
                conn.execute(statement)
        # it owns and writes its own tables
        owners = dict(
            conn.execute("select tablename, tableowner from pg_tables where schemaname = 'public'").fetchall()
        )
        assert owners and set(owners.values()) == {"morgus"}
    assert not marker.exists()


def test_console_role_cannot_log_in_nor_write_nor_notify(postgres: EmbeddedPostgres) -> None:
    # what holds first: the role has no login and no password, over TCP and the socket
    row_dsn = f"host=127.0.0.1 port={postgres.port} dbname=morgus user=morgus_console"
    assert "no password supplied" in _refused(row_dsn)
    with psycopg.connect(postgres.admin_dsn("morgus"), autocommit=True) as conn:
        assert conn.execute(
            "select rolcanlogin, rolpassword is null from pg_authid where rolname = 'morgus_console'"
        ).fetchone() == (False, True)
        # and were it to log in, it could only read
        conn.execute("set role morgus_console")
        conn.execute("select count(*) from tasks").fetchone()
        for statement in (
            "insert into tasks (id, workflow_id, title, description) values (gen_random_uuid(), 'x', 'x', 'x')",
            "update tasks set title = 'x'",
            "delete from task_steps",
            "truncate artifacts",
            "select * from task_messages",
            "select pg_notify('morgus_events', '1')",
            "insert into task_events (task_id, kind, payload) values (gen_random_uuid(), 'task', '{}')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("reset role")


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_trust_data_dir_is_converted_on_start(tmp_path: Path, running: bool) -> None:
    """A data directory made by the previous Morgus (initdb --auth=trust, tables owned by the superuser), left
    running or stopped when the new Morgus starts."""
    pg = EmbeddedPostgres(tmp_path / "pgdata", free_port())
    pg._ensure_dirs()
    pg._pg("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(pg.pgdata))
    opts = f"-h {pg.host} -p {pg.port} -k {pg.pgdata}"
    pg._pg("pg_ctl", "start", "-w", "-D", str(pg.pgdata), "-l", str(pg.pgdata / "log"), "-o", opts)
    trust = f"postgresql://postgres@{pg.host}:{pg.port}"
    try:
        with psycopg.connect(f"{trust}/postgres", autocommit=True) as conn:
            conn.execute("create database morgus")
        apply_migrations(f"{trust}/morgus")
        with psycopg.connect(f"{trust}/morgus", autocommit=True) as conn:
            conn.execute(
                "insert into tasks (id, workflow_id, title, description) "
                "values ('00000000-0000-0000-0000-000000000001', 'task-old', 'old task', 'kept')"
            )
        assert not pg.superuser_secret_file.exists()
        if not running:
            pg.stop()

        pg.start()  # password set, pg_hba rewritten, configuration reloaded

        assert "no password supplied" in _refused(f"{trust}/postgres")
        assert "no password supplied" in _refused(f"host={pg.pgdata} port={pg.port} user=postgres dbname=postgres")
        assert stat.S_IMODE(os.stat(pg.superuser_secret_file).st_mode) == 0o600
        assert apply_migrations(pg.dsn) == []  # idempotent on the old database, as the new role
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            assert conn.execute("select title from tasks").fetchall() == [("old task",)]
            conn.execute(
                "insert into task_steps (id, task_id, seq, type) values "
                "(gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 0, 'TASK_START')"
            )
            owners = {r[0] for r in conn.execute("select tableowner from pg_tables where schemaname = 'public'")}
            assert owners == {"morgus"}
            assert conn.execute("select count(*) from task_events").fetchone()[0] >= 2  # trigger, now morgus's
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("copy (select 1) to program 'true'")
        pg.stop()
        pg.start()
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("select count(*) from tasks").fetchone() == (1,)
    finally:
        pg.stop("immediate")
