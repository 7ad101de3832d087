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
    # Stop sequences sent with every chat completion (JSON list, at most 4). Unset for hosted models; the local
    # model's worker gets one that ends a reply after its first tool call (docs/local-model.md).
    llm_stop: list[str] = Field(default_factory=list, alias="MORGUS_LLM_STOP", max_length=4)
    # The local model (`morgus up --local-model`): a GGUF file (else the pinned one of `morgus[local-model]`),
    # a llama-server binary (else PATH, else built once into MORGUS_HOME/bin), and how to serve it.
    local_model: Path | None = Field(default=None, alias="MORGUS_LOCAL_MODEL")
    llama_server: Path | None = Field(default=None, alias="MORGUS_LLAMA_SERVER")
    llama_cpp_source: Path | None = Field(default=None, alias="MORGUS_LLAMA_CPP_SOURCE")
    local_model_port: int = Field(default=0, alias="MORGUS_LOCAL_MODEL_PORT", ge=0, le=65535)  # 0: a free port
    local_model_ctx: int = Field(default=16384, alias="MORGUS_LOCAL_MODEL_CTX", ge=2048, le=262144)
    local_model_threads: int | None = Field(default=None, alias="MORGUS_LOCAL_MODEL_THREADS", ge=1, le=512)

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

    @field_validator("llm_stop", mode="before")
    @classmethod
    def _stops(cls, v: object) -> object:
        if isinstance(v, str):  # the environment's JSON text, also when passed as a keyword (tests, subprocesses)
            import json

            try:
                v = json.loads(v) if v.strip() else []
            except json.JSONDecodeError:
                raise ValueError('must be a JSON list of strings, e.g. ["\\n\\n```json"]') from None
        if isinstance(v, list) and any(not isinstance(s, str) or not s or len(s) > 64 for s in v):
            raise ValueError("each stop sequence must be 1 to 64 characters")
        return v

    @field_validator("local_model")
    @classmethod
    def _gguf(cls, v: Path | None) -> Path | None:
        if v is None or str(v) == "":
            return None
        if not v.is_file():
            raise ValueError(f"file {str(v)!r} does not exist")
        with open(v, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ValueError(f"{str(v)!r} is not a GGUF model file")
        return v.resolve()

    @field_validator("llama_server")
    @classmethod
    def _executable(cls, v: Path | None) -> Path | None:
        import os

        if v is None or str(v) == "":
            return None
        if not v.is_file() or not os.access(v, os.X_OK):
            raise ValueError(f"{str(v)!r} is not an executable file")
        return v.resolve()

    @field_validator("llama_cpp_source")
    @classmethod
    def _source(cls, v: Path | None) -> Path | None:
        if v is None or str(v) == "":
            return None
        if not v.exists():
            raise ValueError(f"{str(v)!r} does not exist (a llama.cpp source directory or sdist .tar.gz)")
        return v.resolve()

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, v: str) -> str:
        if v not in ("console", "json"):
            raise ValueError("must be 'console' or 'json'")
        return v

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
