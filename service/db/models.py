"""SQLAlchemy 2 ORM models: the tables of design.md's data model.

External ids are the strings the product sends; ``id`` columns are our internal keys.
Rows a deletion removes move from ``interactions`` to ``held_interactions`` in the same
transaction that records the request, and stay there (out of serving and training) until
the unlearning job that covers them completes and purges them.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        list[str]: JSON,
    }


Timestamp = DateTime(timezone=True)
# BIGINT on Postgres, INTEGER on SQLite (so SQLite's rowid autoincrement applies)
BigId = BigInteger().with_variant(Integer(), "sqlite")


class RequestStatus(enum.StrEnum):
    pending = "pending"
    in_progress = "in_progress"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class RequestScope(enum.StrEnum):
    interactions = "interactions"
    user = "user"


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    published = "published"
    completed = "completed"
    failed = "failed"


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # set when a whole-user deletion is accepted; the user then gets cold-start lists
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class Interaction(Base):
    __tablename__ = "interactions"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True, index=True)
    value: Mapped[float] = mapped_column(Float, default=1.0)
    ts: Mapped[int] = mapped_column(BigInteger, default=0)


class HeldInteraction(Base):
    """A row moved out of ``interactions`` by an accepted deletion, kept until purged."""

    __tablename__ = "held_interactions"
    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deletion_requests.id"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    ts: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public part of the key
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the secret part
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)


class DeletionRequest(Base):
    __tablename__ = "deletion_requests"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key"),
        Index("ix_deletion_requests_status_created", "status", "created_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical request
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), default=None)
    scope: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # external item ids; set to None (redacted) once completed, count + hash stay
    items: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    items_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default=RequestStatus.pending)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    completed_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    failed_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    model_version: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("unlearning_jobs.id"), default=None, index=True
    )
    callback_url: Mapped[str | None] = mapped_column(String(2000), default=None)


class UnlearningJob(Base):
    __tablename__ = "unlearning_jobs"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.queued, index=True)
    request_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    base_version: Mapped[str | None] = mapped_column(String(64), default=None)
    produced_version: Mapped[str | None] = mapped_column(String(64), default=None)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    # a worker owns a running job until then; after it, the job may be taken over
    lease_expires_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_version: Mapped[str | None] = mapped_column(
        ForeignKey("model_versions.version"), default=None
    )
    kind: Mapped[str] = mapped_column(String(20))  # trained | unlearned | retrained
    model_kind: Mapped[str] = mapped_column(String(20))  # mf | neumf
    location: Mapped[str] = mapped_column(String(1000))  # checkpoint directory
    sha256: Mapped[str] = mapped_column(String(64))  # of the checkpoint's weights file
    train_digest: Mapped[str] = mapped_column(String(64))
    n_users: Mapped[int] = mapped_column(Integer)
    n_items: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class WebhookDelivery(Base):
    """Outbox of signed status webhooks: one row per status change of a request with a
    ``callback_url``, written in the transaction of the change. ``next_attempt_at`` None:
    given up (``last_error`` says why). Per request, rows go out in ``id`` order."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "delivered_at", "next_attempt_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deletion_requests.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))  # the request's new status
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(Timestamp, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
