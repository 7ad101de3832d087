"""The operator's MCP servers: a JSON or TOML file named by MORGUS_MCP_CONFIG, validated once at worker start.

    {"servers": {"notes": {"command": "notes-mcp", "args": ["--ro"], "env": {"TOKEN": "…"},
                           "phases": ["RESEARCH", "BUILD"]},
                 "docs":  {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer …"}}}}

`env` and `headers` values are secrets: held as SecretStr, so no repr, log line or error shows them, and they never
leave this worker (the workflow history holds only server names, tool names and schemas).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from morgus.config import ConfigError
from morgus.contracts import PHASE_ORDER, Phase

CONFIG_MAX_BYTES = 1_000_000
# `server__tool` must stay within the 64 characters a tool name may have; "__" is the namespace separator, so a
# server name cannot hold it (`a__b` + `c` and `a` + `b__c` would otherwise be the same tool).
_SERVER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
SERVER_NAME_RULE = "a server name is 1-32 of a-z, 0-9, '-' and '_', starts with a letter or digit, and has no '__'"


def _server_name(v: str) -> str:
    if not _SERVER_NAME.match(v) or "__" in v:
        raise ValueError(SERVER_NAME_RULE)
    return v


ServerName = Annotated[str, AfterValidator(_server_name)]
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,100}$")


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(default=None, min_length=1, max_length=4096)  # stdio: run on the worker's host
    args: list[Annotated[str, StringConstraints(max_length=4096)]] = Field(default_factory=list, max_length=100)
    env: dict[str, SecretStr] = Field(default_factory=dict, max_length=100)
    cwd: str | None = None
    url: str | None = Field(default=None, max_length=2000, repr=False)  # streamable HTTP; may hold a token
    headers: dict[str, SecretStr] = Field(default_factory=dict, max_length=100)
    phases: list[Phase] = Field(default_factory=lambda: list(PHASE_ORDER), min_length=1)
    # one call's deadline; the activity's start-to-close timeout adds a grace for starting the server
    timeout_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (a stdio server) or `url` (a streamable-HTTP server)")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in self.url):
                raise ValueError("`url` must be an http:// or https:// URL")
            if self.args or self.env or self.cwd:
                raise ValueError("`args`, `env` and `cwd` are for a stdio server (`command`), not a `url`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` are for a streamable-HTTP server (`url`), not a `command`")
        if "\x00" in (self.command or "") or any("\x00" in a for a in self.args):
            raise ValueError("`command` and `args` cannot hold a NUL character")
        for name in self.env:
            if not _ENV_NAME.match(name):
                raise ValueError(f"env: {name[:40]!r} is not a variable name")
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"headers: {name[:40]!r} is not a header name")
            if any(c in value.get_secret_value() for c in "\r\n\x00"):
                raise ValueError(f"headers: the value of {name!r} holds a line break or NUL")
        self.phases = list(dict.fromkeys(self.phases))
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "streamable HTTP"

    def secrets(self) -> list[str]:
        """Every value an error message must not repeat: the URL (it may hold a token), env and header values."""
        values = [v.get_secret_value() for v in (*self.env.values(), *self.headers.values())]
        return [v for v in (*values, self.url or "") if len(v) >= 4]


class McpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    servers: dict[ServerName, McpServerConfig] = Field(default_factory=dict, max_length=32)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "the file"


def parse_mcp_config(text: str, *, toml: bool, source: str = "MORGUS_MCP_CONFIG") -> McpConfig:
    """The config, or a ConfigError naming the field that is wrong (never its value: it may be a secret)."""
    try:
        data = tomllib.loads(text) if toml else json.loads(text)
    except (ValueError, RecursionError) as e:
        kind = "TOML" if toml else "JSON"
        raise ConfigError(f"{source}: not valid {kind}: {str(e)[:200]}") from None
    try:
        return McpConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_input=False)[0]
        loc = tuple(err.get("loc") or ())
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {_where(loc)}: {msg}") from None


def load_mcp_config(path: Path | None) -> McpConfig:
    """The servers of MORGUS_MCP_CONFIG (none when it is unset). A `.toml` file is read as TOML, anything else as
    JSON."""
    if path is None:
        return McpConfig()
    try:
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise ConfigError(f"MORGUS_MCP_CONFIG {path}: larger than {CONFIG_MAX_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"MORGUS_MCP_CONFIG {path}: cannot be read ({type(e).__name__})") from None
    return parse_mcp_config(text, toml=path.suffix.lower() == ".toml", source=f"MORGUS_MCP_CONFIG {path}")
