"""Workflows: deterministic orchestration only. No I/O, no clock, no randomness here."""

from workflows.task import TaskWorkflow

__all__ = ["TaskWorkflow"]
