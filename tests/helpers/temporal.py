"""The real `temporal` CLI (the binary the dev server runs from) against the test server."""

from __future__ import annotations

import subprocess
from typing import Any

from morgus.app.stack import temporal_binary


def temporal_cli(settings: Any, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [temporal_binary(), *args, "--address", settings.temporal_address], capture_output=True, text=True, timeout=60
    )
