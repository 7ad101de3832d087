"""Serving the prepared model: the llama-server process on loopback, and the worker settings that point at it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from morgus.child_process import start_healthy, terminate
from morgus.config import Settings
from morgus.local_model.base import LocalModelError, Progress, print_line
from morgus.local_model.build import server_binary
from morgus.local_model.weights import models_dir, weights_path

TEMPLATE = Path(__file__).resolve().parent.parent / "templates" / "chatml-fenced-tool-calls.jinja"
# After a first fenced call the model tends to write more, guessing results it has not seen; stop there.
LOCAL_STOP = ["```\n\n```json", "```\n```json"]
# max_tokens for the local model's replies: a whole small file fits (an index.html of ~1,000 tokens), a runaway
# reply (2,300+ tokens, 4 minutes at 9 tokens/s, seen) ends in under 3 minutes instead of at the activity's timeout
LOCAL_MAX_TOKENS = 1536


@dataclass
class LlamaServer:
    binary: Path
    model: Path
    alias: str
    port: int
    ctx: int = 16384
    threads: int | None = None
    template: Path | None = TEMPLATE
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "--model",
            str(self.model),
            "--alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),  # loopback only: the server has no auth
            "--ctx-size",
            str(self.ctx),
            "--parallel",
            "1",  # one slot: the whole window for one conversation
            "--jinja",  # tool calls through the chat template
            "--cache-reuse",
            "256",  # reuse the KV cache across turns that share a prefix (the conversation)
            "--no-webui",
        ]
        if self.template is not None:
            cmd += ["--chat-template-file", str(self.template)]
        if self.threads:
            cmd += ["--threads", str(self.threads)]
        if cpu_has_amx():
            # ggml's AMX weight repacking crashes (SIGSEGV in ggml_backend_amx_mul_mat) where the CPU reports AMX
            # but the VM does not let a process use it, as on this project's CI machine; AVX paths still apply.
            cmd += ["--no-repack"]
        return cmd + self.extra_args

    def start(self, timeout_s: float = 300) -> None:
        # /health answers 503 while the model loads and 200 once it can serve
        self.proc = start_healthy(
            self.command(),
            f"http://127.0.0.1:{self.port}/health",
            timeout_s,
            LocalModelError,
            what="llama-server",
            log_file=self.log_file,
            interval_s=0.5,
            port=("127.0.0.1", self.port),
            port_busy="set MORGUS_LOCAL_MODEL_PORT to a free one",
        )

    def stop(self) -> None:
        terminate(self.proc, grace_s=10)


def cpu_has_amx() -> bool:
    try:
        return "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(settings: Settings, progress: Progress = print_line) -> tuple[Path, Path, str]:
    """Weights and server ready in the cache (joining/building them if needed): (binary, model, alias)."""
    model, alias = weights_path(settings, progress)
    return server_binary(settings, progress), model, alias


def start_local_model(
    settings: Settings, progress: Progress = print_line, *, build: bool = True, timeout_s: float = 300
) -> LlamaServer:
    """Prepare (once) and start the local model server; the caller stops it."""
    model, alias = weights_path(settings, progress)
    binary = server_binary(settings, progress, build=build)
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(
        binary=binary,
        model=model,
        alias=alias,
        port=settings.local_model_port or free_port(),
        ctx=settings.local_model_ctx,
        threads=settings.local_model_threads,
        log_file=home / "llama-server.log",
    )
    progress(f"starting {alias} on {server.url} (log {server.log_file})…")
    server.start(timeout_s)
    return server


def model_config_file(settings: Settings, alias: str) -> Path:
    """A MORGUS_MODEL_CONFIG that tells Morgus the served context window (and a zero price), merged over the
    user's own file when there is one."""
    data: dict = {"models": {}}
    if settings.model_config_file:
        data = json.loads(Path(settings.model_config_file).read_text())
        data.setdefault("models", {})
    data["models"][alias] = {**data["models"].get(alias, {}), "context_window": settings.local_model_ctx}
    path = models_dir(settings) / "model-config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


LOCAL_LLM_TIMEOUT_S = 270.0


def worker_env(settings: Settings, server: LlamaServer) -> dict[str, str]:
    """Environment for a worker that uses the local model."""
    return {
        "OPENAI_BASE_URL": server.url,
        "OPENAI_API_KEY": "local",  # the SDK insists on one; llama-server checks none
        "MORGUS_MODEL": server.alias,
        "MORGUS_CODE_MODEL": "",
        "MORGUS_LLM_STOP": json.dumps(LOCAL_STOP),
        "MORGUS_LLM_MAX_TOKENS": str(settings.llm_max_tokens or LOCAL_MAX_TOKENS),
        "MORGUS_MODEL_CONFIG": str(model_config_file(settings, server.alias)),
        # a CPU model reads a cold prompt at ~50 tokens/s, and far slower on busy cores (a 2,300-token first turn
        # took over 120 s with other jobs running): wait up to just under the activity's start-to-close (300 s)
        # rather than time out and send the same prompt again from the start
        "MORGUS_LLM_TIMEOUT_S": str(max(settings.llm_timeout_s, LOCAL_LLM_TIMEOUT_S)),
    }
