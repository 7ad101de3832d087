"""Bounded capture of a command's output: head and tail for the model, the full stream to a capped log file.

Memory stays constant whatever the command prints (a 1 GB flood costs the worker a few KB).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

DEFAULT_MODEL_BYTES = 16 * 1024
DEFAULT_LOG_BYTES = 64 * 1024 * 1024


class _Stream:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.keep - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > self.keep:
                del self.tail[: len(self.tail) - self.keep]

    def text(self) -> str:
        head = self.head.decode("utf-8", errors="replace")
        if self.total <= len(self.head) + len(self.tail):
            return head + self.tail.decode("utf-8", errors="replace")
        skipped = self.total - len(self.head) - len(self.tail)
        return f"{head}\n[... {skipped} bytes omitted ...]\n{self.tail.decode('utf-8', errors='replace')}"


class LiveTap:
    """The first `max_bytes` of a command's output as it arrives, for the live view: fed from the thread that
    reads the command, taken (in arrival order, per stream) from the event loop. Memory stays bounded."""

    def __init__(self, max_bytes: int = 256 * 1024) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] = []
        self._taken = 0

    def feed(self, stream: str, data: bytes) -> None:
        with self._lock:
            keep = data[: self.max_bytes - self._taken]
            if keep:
                self._pending.append((stream, keep))
                self._taken += len(keep)

    def take(self) -> list[tuple[str, bytes]]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending


class CappedOutput:
    def __init__(
        self,
        model_bytes: int = DEFAULT_MODEL_BYTES,
        log_path: Path | None = None,
        log_bytes: int = DEFAULT_LOG_BYTES,
        tap: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.tap = tap  # sees every piece as it arrives (the live view)
        per_part = max(256, model_bytes // 4)  # head + tail of stdout and of stderr
        self.streams = {"stdout": _Stream(per_part), "stderr": _Stream(per_part)}
        self.log_path = log_path
        self.log_bytes = log_bytes
        self._log: BinaryIO | None = None
        self._logged = 0
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            # host-only folder, but never write through a link found at the name
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
            self._log = os.fdopen(os.open(log_path, flags, 0o600), "wb")

    def feed(self, stream: str, data: bytes) -> None:
        self.streams[stream].feed(data)
        if self.tap is not None:
            self.tap(stream, data)
        if self._log is not None and self._logged < self.log_bytes:
            chunk = data[: self.log_bytes - self._logged]
            self._log.write(chunk)
            self._logged += len(chunk)
            if self._logged >= self.log_bytes:
                self._log.write(f"\n[log truncated at {self.log_bytes} bytes]\n".encode())

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def total_bytes(self) -> int:
        return sum(s.total for s in self.streams.values())

    @property
    def truncated(self) -> bool:
        return any(s.total > len(s.head) + len(s.tail) for s in self.streams.values())

    def stdout(self) -> str:
        return self.streams["stdout"].text()

    def stderr(self) -> str:
        return self.streams["stderr"].text()
