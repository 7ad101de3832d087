"""The `morgus` command, one module per command group: `main` (the root app and its error handling), `services`
(up, api, worker, demo), `tasks` (morgus task …), `admin` (db, sandbox, local-model), `memory` (morgus memory …), `common` (their output
and settings)."""

from morgus.app.cli.main import app, main

__all__ = ["app", "main"]
