"""Deterministic ids: a task's uuid is its workflow id's suffix; a step's id is derived from (task, seq)."""

from __future__ import annotations

import hashlib
import uuid

_STEP_NS = uuid.UUID("6f1d1c2e-4b8a-4f57-9a1e-3d2b7c9e0a11")
_ARTIFACT_NS = uuid.UUID("0b8e2f4a-7c61-4d3b-8e5f-1a2b3c4d5e6f")
WORKFLOW_ID_PREFIX = "task-"


def new_task_id() -> str:
    return str(uuid.uuid4())


def workflow_id_for(task_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{task_id}"


def task_id_from_workflow_id(workflow_id: str) -> str:
    """`task-<uuid>` gives `<uuid>`; any other id (started by hand) maps to a stable uuid5 of itself."""
    if workflow_id.startswith(WORKFLOW_ID_PREFIX):
        try:
            return str(uuid.UUID(workflow_id[len(WORKFLOW_ID_PREFIX) :]))
        except ValueError:
            pass
    return str(uuid.uuid5(_STEP_NS, workflow_id))


def normalize_task_ref(ref: str) -> str:
    """Accept a task id or a workflow id from the user; return the task id. Raises ValueError."""
    ref = ref.strip()
    if ref.startswith(WORKFLOW_ID_PREFIX):
        ref = ref[len(WORKFLOW_ID_PREFIX) :]
    return str(uuid.UUID(ref))


def digest(text: str) -> str:
    """A short, stable fingerprint of a text (tool arguments, results, replies) for loop detection."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def step_id(task_id: str, seq: int) -> str:
    return str(uuid.uuid5(_STEP_NS, f"{task_id}:{seq}"))


def artifact_id(task_id: str, key: str) -> str:
    return str(uuid.uuid5(_ARTIFACT_NS, f"{task_id}:{key}"))
