"""Morgus, in one namespace: the workflow (workflows/), its activities and tools (activities/), the sandboxes
(sandbox/), the projection store (db/), the CLI, API and dev stack (app/), the worker (worker.py), and the shared
contracts, configuration and helpers beside them (see docs/architecture.md)."""
