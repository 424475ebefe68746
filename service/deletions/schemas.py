"""Request and response bodies of the deletion endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from service.db.models import RequestScope, RequestStatus
from service.ids import ExternalId


class InteractionDeletionIn(BaseModel):
    """Items to delete from one user's interactions (external ids as the product sends them)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": ["296", "318"]}]},
    )
    items: list[ExternalId] = Field(
        min_length=1,
        description="item ids to forget for this user; at most the server's "
        "max_items_per_request (default 1000, 413 above)",
    )
    callback_url: AnyHttpUrl | None = Field(
        None, description="called on every status change of the request (signed webhooks)"
    )


class UserDeletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    callback_url: AnyHttpUrl | None = None


class DeletionOut(BaseModel):
    """A deletion request and where it stands."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5f0c8a1e-8d4b-4c53-9a43-0b1f6f1d2c11",
                    "status": "pending",
                    "scope": "interactions",
                    "user": "42",
                    "items": ["296", "318"],
                    "item_count": 2,
                    "items_sha256": "9b1f...",
                    "status_url": "/v1/deletions/5f0c8a1e-8d4b-4c53-9a43-0b1f6f1d2c11",
                    "created_at": "2026-11-28T10:15:00Z",
                    "model_version": None,
                }
            ]
        }
    )
    id: uuid.UUID
    status: RequestStatus
    scope: RequestScope
    user: str
    items: list[str] | None = Field(
        description="the deleted item ids; null once redacted after completion"
    )
    item_count: int
    items_sha256: str = Field(description="sha256 of the sorted item ids, kept after redaction")
    status_url: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    model_version: str | None = Field(
        None, description="the first model version served without this data"
    )
    failure_reason: str | None = None
    job_id: uuid.UUID | None = None
    callback_url: str | None = None


class DeletionPage(BaseModel):
    items: list[DeletionOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null at end")
