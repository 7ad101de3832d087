"""Postgres: SQL migrations, the embedded server, and the idempotent writer behind projection."""
