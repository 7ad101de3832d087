"""What every command group shares: the consoles, the settings a command runs with, and an exit code."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rich.console import Console

from morgus.config import Settings, load_settings

T = TypeVar("T")
# emoji=False: Rich turns `:cross_mark:` into an emoji even with markup off, and a task's text (a user's message, a
# model's reply, a file name) must print as written, never as the icons the CLI itself draws
out = Console(highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


class Exit(Exception):
    """A command's exit code, raised to `main` (which exits hard, temporalio/sdk-python#300)."""

    def __init__(self, code: int) -> None:
        self.code = code


def settings() -> Settings:
    loaded = load_settings()
    from morgus.log import configure_logging

    # quieter than the worker unless MORGUS_LOG_LEVEL says otherwise
    level = loaded.log_level if "log_level" in loaded.model_fields_set else "warning"
    configure_logging(level, loaded.log_format)
    return loaded


def run(make: Callable[[Settings], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(make(settings()))


def say(message: str) -> None:
    """Progress lines of the local model's preparation, printed as they are (no rich markup)."""
    out.print(message, markup=False)
