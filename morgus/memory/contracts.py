"""What the memory activities take and return (Temporal payloads: small, bounded)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from morgus.contracts import Phase, TokenUsage


class RecalledNote(BaseModel):
    id: str
    kind: str
    content: str
    task_id: str | None = None
    distance: float


class MemoryRecallRequest(BaseModel):
    task_id: str
    phase: Phase
    query: str = Field(max_length=8_000)


class MemoryRecall(BaseModel):
    enabled: bool = Field(description="an embedding server is configured (MORGUS_EMBEDDING_BASE_URL)")
    notes: list[RecalledNote] = Field(default_factory=list)
    unavailable: str | None = Field(default=None, description="why memory could not be used this time")


class MemoryDistilRequest(BaseModel):
    task_id: str
    phase: Phase
    model: str | None
    title: str = Field(max_length=500)
    description: str = Field(max_length=4_000)


class MemoryDistilResult(BaseModel):
    enabled: bool
    saved: int = 0  # notes stored by this call or by an earlier attempt of it
    kinds: list[str] = Field(default_factory=list)
    unavailable: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
