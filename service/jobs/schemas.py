"""Response bodies of the unlearning jobs endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service.db.models import JobStatus

_EXAMPLE: dict[str, Any] = {
    "id": "0b6f3c2e-5d1a-4e8b-9c7f-2a1d3e4f5a6b",
    "status": "completed",
    "request_ids": ["7d9e2f10-3b4c-4a5d-8e6f-1a2b3c4d5e6f"],
    "base_version": "trained-20261128T101500-1a2b3c4d",
    "produced_version": "unlearned-20261128T101700-9f8e7d6c",
    "timings": {"unlearn_seconds": 1.8, "publish_seconds": 0.2},
    "metrics": {"rounds": 4},
    "worker_id": "worker-1",
    "attempts": 1,
    "error": None,
    "created_at": "2026-11-28T10:16:58Z",
    "started_at": "2026-11-28T10:16:59Z",
    "finished_at": "2026-11-28T10:17:02Z",
}


class JobOut(BaseModel):
    """One unlearning job: the deletion requests it covers and the version it produced."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [_EXAMPLE]})

    id: uuid.UUID
    status: JobStatus
    request_ids: list[str] = Field(description="deletion requests this job unlearns")
    base_version: str | None = Field(description="the model version it started from")
    produced_version: str | None = Field(description="the unlearned version, once produced")
    timings: dict[str, Any]
    metrics: dict[str, Any]
    worker_id: str | None
    attempts: int
    error: str | None = Field(description="why the last attempt failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    """A page of jobs, newest first."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_EXAMPLE], "next_cursor": None}]}
    )

    items: list[JobOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at end")
