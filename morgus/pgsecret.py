"""The embedded Postgres's passwords: generated once, kept in 0600 files under MORGUS_HOME.

`pg-secret` is the superuser's (only `morgus up`/the tests' fixture use it, to set the server up);
`pg-morgus-secret` is the password of `morgus`, the unprivileged role the worker, API and CLI connect as.
Another local user must not be able to read either, nor swap one for a link to a file they control.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path
from urllib.parse import quote

from morgus.config import ConfigError

SUPERUSER = "postgres"
APP_ROLE = "morgus"
SUPERUSER_SECRET = "pg-secret"
APP_SECRET = "pg-morgus-secret"


class SecretFileError(ConfigError):
    """A secret file is unsafe or unreadable; the message says which and what to do."""


def read_secret(path: Path) -> str | None:
    """The secret in `path`, None if the file does not exist. Refuses a link, a non-regular file, a file another
    user owns and one that group or others may read (someone else could have read or planted it)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        if os.path.islink(path):
            raise SecretFileError(
                f"{path} is a symbolic link; remove it (Morgus only uses a regular file it made)"
            ) from None
        raise SecretFileError(f"cannot read {path}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{path} is not a regular file; remove it")
        if st.st_uid != os.geteuid():
            raise SecretFileError(f"{path} belongs to another user (uid {st.st_uid}); remove it")
        if st.st_mode & 0o077:
            raise SecretFileError(
                f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); remove it or chmod 600 it"
            )
        data = os.read(fd, 4096).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    return data


def ensure_secret(path: Path) -> str:
    """Read the secret in `path`, creating it (O_EXCL, mode 0600) with a fresh random value if it is absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(50):
        value = read_secret(path)
        if value:
            return value
        if value is None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            except FileExistsError:
                continue  # another process made it first: read theirs
            try:
                value = secrets.token_urlsafe(32)
                os.write(fd, value.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            return value
        time.sleep(0.05)  # empty: its creator is still writing it
    raise SecretFileError(f"{path} stays empty; remove it")


def embedded_dsn(home: Path, host: str, port: int, dbname: str) -> str:
    """The unprivileged role's connection string (no password part while the secret does not exist yet: the
    connection is then refused, and the caller says to start the stack)."""
    password = read_secret(home / APP_SECRET)
    auth = f"{APP_ROLE}:{quote(password, safe='')}" if password else APP_ROLE
    return f"postgresql://{auth}@{host}:{port}/{dbname}"
