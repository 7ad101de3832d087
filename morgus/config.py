"""Configuration from the environment, validated once at start.

Every entry point calls `load_settings()`; a bad value ends the process with one clear line (see `fail`).
"""

from __future__ import annotations

import re
import sys
from functools import cached_property
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
EMBEDDED_PG_PORT = 54329
EMBEDDED_DB_NAME = "morgus"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    temporal_address: str = Field(default=DEFAULT_TEMPORAL_ADDRESS, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="morgus", alias="MORGUS_TASK_QUEUE")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, alias="OPENAI_API_KEY", repr=False)
    model: str = Field(default="gpt-4o", alias="MORGUS_MODEL")
    code_model: str | None = Field(default=None, alias="MORGUS_CODE_MODEL")
    model_config_file: str | None = Field(default=None, alias="MORGUS_MODEL_CONFIG")
    context_threshold: float = Field(default=0.8, alias="MORGUS_CONTEXT_THRESHOLD", gt=0.1, le=1.0)
    home: Path = Field(default=Path(".morgus"), alias="MORGUS_HOME")
    workspaces: Path | None = Field(default=None, alias="MORGUS_WORKSPACES")
    llm_timeout_s: float = Field(default=120.0, alias="MORGUS_LLM_TIMEOUT_S", gt=0)
    log_level: str = Field(default="info", alias="MORGUS_LOG_LEVEL")
    log_format: str = Field(default="console", alias="MORGUS_LOG_FORMAT")
    temporal_ui_url: str = Field(default="http://127.0.0.1:8233", alias="MORGUS_TEMPORAL_UI_URL")
    db_retry_s: float = Field(default=600.0, alias="MORGUS_DB_RETRY_S", gt=0)
    max_concurrent_activities: int = Field(default=100, alias="MORGUS_MAX_CONCURRENT_ACTIVITIES", ge=1)
    max_concurrent_workflow_tasks: int = Field(default=50, alias="MORGUS_MAX_CONCURRENT_WORKFLOW_TASKS", ge=1)
    max_cached_tasks: int = Field(default=500, alias="MORGUS_MAX_CACHED_TASKS", ge=0)
    max_sandboxes: int = Field(default=8, alias="MORGUS_MAX_SANDBOXES", ge=1)
    shutdown_grace_s: float = Field(default=30.0, alias="MORGUS_SHUTDOWN_GRACE_S", ge=0)
    metrics_addr: str | None = Field(default=None, alias="MORGUS_METRICS_ADDR")
    api_token: str | None = Field(default=None, alias="MORGUS_API_TOKEN", repr=False)
    # Host names the API answers to (DNS rebinding); `morgus api --host X` adds X.
    api_allowed_hosts: str = Field(default="localhost,127.0.0.1,[::1]", alias="MORGUS_API_ALLOWED_HOSTS")
    api_max_streams: int = Field(default=200, alias="MORGUS_API_MAX_STREAMS", ge=1, le=100_000)
    console_dist: Path | None = Field(default=None, alias="MORGUS_CONSOLE_DIST")

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", v):
            raise ValueError(f"must be host:port, got {v!r}")
        return v

    @field_validator("database_url")
    @classmethod
    def _pg_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not v.startswith(("postgres://", "postgresql://")):
            raise ValueError("must start with postgresql:// (unset it to use the embedded Postgres)")
        return v

    @field_validator("model_config_file")
    @classmethod
    def _model_file(cls, v: str | None) -> str | None:
        if v and not Path(v).is_file():
            raise ValueError(f"file {v!r} does not exist")
        return v or None

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v not in ("console", "json"):
            raise ValueError("must be 'console' or 'json'")
        return v

    @field_validator("api_token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v and not re.fullmatch(r"[\x21-\x7e]+", v):
            raise ValueError("must be printable ASCII with no spaces (it is sent in an HTTP header)")
        return v or None

    @field_validator("api_allowed_hosts")
    @classmethod
    def _hosts(cls, v: str) -> str:
        hosts = [normalize_host(h) for h in v.split(",") if h.strip()]
        if not hosts:
            raise ValueError("must name at least one host, e.g. localhost,127.0.0.1")
        return ",".join(hosts)

    @cached_property
    def allowed_hosts(self) -> tuple[str, ...]:
        return tuple(self.api_allowed_hosts.split(","))

    @cached_property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @cached_property
    def dsn(self) -> str:
        """The Postgres to use: DATABASE_URL, else the embedded server `morgus up` runs."""
        return self.database_url or f"postgresql://postgres@127.0.0.1:{EMBEDDED_PG_PORT}/{EMBEDDED_DB_NAME}"

    @cached_property
    def workspace_root(self) -> Path:
        return (self.workspaces or self.home / "workspaces").resolve()

    def workspace_for(self, task_id: str) -> Path:
        return self.workspace_root / task_id


def normalize_host(host: str) -> str:
    """A Host name as the API compares it: lower case, IPv6 in brackets, no port, no scheme."""
    h = host.strip().lower()
    if ":" in h and not h.startswith("["):
        h = f"[{h}]"  # a bare IPv6 address (a name with a port is refused below)
    if not (re.fullmatch(r"[a-z0-9]([a-z0-9\-.]*[a-z0-9])?", h) or re.fullmatch(r"\[[0-9a-f:.]+\]", h)):
        raise ValueError(f"{host.strip()!r} is not a host name or IP address (no scheme, no port)")
    return h


class ConfigError(Exception):
    """A user-fixable configuration problem; printed as one line."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        first = e.errors()[0]
        field = first.get("loc", ("?",))[0]
        raise ConfigError(f"invalid configuration: {field}: {first.get('msg')}") from None


def fail(message: str, code: int = 2) -> None:
    """Print one clear line to stderr and exit without a traceback."""
    sys.stderr.write(f"morgus: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)
