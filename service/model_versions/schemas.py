"""Response bodies of the model registry endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_EXAMPLE: dict[str, Any] = {
    "version": "unlearned-20261128T101700-9f8e7d6c",
    "parent_version": "trained-20261128T101500-1a2b3c4d",
    "kind": "unlearned",
    "model_kind": "mf",
    "location": "/var/lib/rtbf/models/unlearned-20261128T101700-9f8e7d6c",
    "sha256": "9f8e7d6c" + "0" * 56,
    "train_digest": "5a4b" + "0" * 60,
    "n_users": 6040,
    "n_items": 3706,
    "metrics": {"recall@20": 0.31},
    "created_at": "2026-11-28T10:17:00Z",
    "published_at": "2026-11-28T10:17:02Z",
    "active": True,
}


class ModelVersionOut(BaseModel):
    """One registered checkpoint."""

    model_config = ConfigDict(
        from_attributes=True, protected_namespaces=(), json_schema_extra={"examples": [_EXAMPLE]}
    )

    version: str
    parent_version: str | None = Field(description="the version this one was unlearned from")
    kind: str = Field(description="origin: trained | unlearned | retrained")
    model_kind: str = Field(description="mf | neumf")
    location: str = Field(description="checkpoint directory")
    sha256: str = Field(description="sha256 of the weights file")
    train_digest: str = Field(description="digest of the training data the weights fit")
    n_users: int
    n_items: int
    metrics: dict[str, Any]
    created_at: datetime
    published_at: datetime | None = Field(description="when it was last activated")
    active: bool = Field(description="the version every replica should serve")


class ModelVersionList(BaseModel):
    """Registered versions, newest first."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"items": [_EXAMPLE], "served_version": _EXAMPLE["version"]}]
        },
    )

    items: list[ModelVersionOut]
    served_version: str | None = Field(
        description="the version this replica has loaded; null when none"
    )


class CurrentModel(BaseModel):
    """The active version in the registry and what this replica actually serves."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [{"active": _EXAMPLE, "served_version": _EXAMPLE["version"]}]
        },
    )

    active: ModelVersionOut
    served_version: str | None = Field(
        description="the version this replica has loaded; differs from `active.version` for "
        "up to the poll interval after an activation, or when loading it failed"
    )


class HotSwapIn(BaseModel):
    """Which stored version every replica should serve (newer, older: rollback, or pinning)."""

    model_config = ConfigDict(
        protected_namespaces=(), json_schema_extra={"examples": [{"version": _EXAMPLE["version"]}]}
    )

    version: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="a registered version (see GET /v1/models)",
    )
    allow_reexposure: bool = Field(
        False,
        description="serve a version that predates completed deletions (their data would be "
        "shown again): for incident rollbacks only; refused with 409 otherwise",
    )


class HotSwapOut(BaseModel):
    """The version now active and published."""

    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "version": _EXAMPLE["version"],
                    "published_at": _EXAMPLE["published_at"],
                    "previous_version": _EXAMPLE["parent_version"],
                }
            ]
        },
    )

    version: str
    published_at: datetime = Field(description="when it was published")
    previous_version: str | None = Field(
        description="the version active before; hot-swap to it to roll back"
    )
