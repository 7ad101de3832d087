"""The root `morgus` app: its command groups, and `main`, which turns every user error into one line."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from morgus.app.cli import services
from morgus.app.cli.admin import db_app, local_app, sandbox_app
from morgus.app.cli.common import Exit, err, out
from morgus.app.cli.memory import memory_app
from morgus.app.cli.tasks import task_app
from morgus.app.terminal import term_safe
from morgus.config import ConfigError

if TYPE_CHECKING:
    from typer._click.exceptions import UsageError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Morgus: durable autonomous software tasks on Temporal."
)
app.command()(services.up)
app.command()(services.api)
app.command("worker")(services.worker_cmd)
app.command()(services.demo)
app.add_typer(task_app, name="task")
app.add_typer(local_app, name="local-model")
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(memory_app, name="memory")


def _usage_error(e: UsageError) -> int:
    """A usage error (unknown command, missing argument, bad option or value) as one line on stderr; exit 2.
    `morgus` or `morgus task` alone prints the help instead (also exit 2, as click does)."""
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(e, NoArgsIsHelpError):
        out.print(e.format_message(), markup=False, highlight=False)
        return 2
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None else "morgus"
    message = " ".join(e.format_message().split())  # click wraps long messages over several lines
    err.print(f"morgus: {term_safe(message)} (see `{term_safe(where)} --help`)", markup=False, highlight=False)
    return 2


def main() -> None:
    """Console-script entry: one clear line for user errors, then a hard exit (temporalio/sdk-python#300)."""
    from typer._click.exceptions import ClickException, UsageError

    code = 0
    try:
        app(standalone_mode=False, prog_name="morgus")
    except UsageError as e:
        code = _usage_error(e)
    except ClickException as e:  # e.g. a file option that cannot be opened
        err.print(f"morgus: {term_safe(' '.join(e.format_message().split()))}", markup=False, highlight=False)
        code = e.exit_code
    except ConfigError as e:
        err.print(f"morgus: {e}", markup=False, highlight=False)
        code = 2
    except Exit as e:
        code = e.code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)
