"""Workflows: deterministic orchestration only. No I/O, no clock, no randomness here."""

from morgus.workflows.task import TaskWorkflow

__all__ = ["TaskWorkflow"]
