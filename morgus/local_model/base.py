"""What every step of preparing and serving the local model shares: its error, and how progress is reported
(a rich bar on a terminal, a few plain lines otherwise)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from morgus.config import ConfigError

Progress = Callable[[str], None]


class LocalModelError(ConfigError):
    """The local model cannot be prepared or served; one sentence the user can act on."""


def print_line(msg: str) -> None:
    print(msg, flush=True)


class Bar:
    """A progress bar on a terminal (rich, already a dependency), a few plain lines otherwise."""

    def __init__(self, what: str, total: int, progress: Progress) -> None:
        self.what, self.total, self.progress, self.done, self._last_pct = what, total, progress, 0, -1
        self._rich = None
        if progress is print_line and sys.stdout.isatty():
            from rich.progress import BarColumn, DownloadColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._rich.start()
            self._task = self._rich.add_task(what, total=total)

    def advance(self, n: int) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
            return
        pct = 100 * self.done // max(self.total, 1)
        if pct // 10 != self._last_pct // 10:
            self._last_pct = pct
            self.progress(f"{self.what}: {pct}% ({self.done >> 20} of {self.total >> 20} MiB)")

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
