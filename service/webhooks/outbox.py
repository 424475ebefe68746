"""The webhook outbox: a ``webhook_deliveries`` row per status change of a request that has
a ``callback_url``, added in the same transaction as the change (so a committed change
always has its webhook, and a rolled-back one never does). Payloads carry counts, never
the item ids."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import DeletionRequest, User, WebhookDelivery, utcnow


def payload(
    *,
    request_id: uuid.UUID,
    status: str,
    scope: str,
    user: str,
    item_count: int,
    model_version: str | None,
    occurred_at: datetime,
) -> dict[str, Any]:
    return {
        "request_id": str(request_id),
        "status": str(status),
        "scope": str(scope),
        "user": user,
        "item_count": item_count,
        "model_version": model_version,
        "occurred_at": occurred_at.isoformat(),
    }


def _add(session: Session, request_id: uuid.UUID, status: str, body: dict[str, Any]) -> None:
    now = utcnow()
    session.add(
        WebhookDelivery(
            request_id=request_id,
            status=str(status),
            payload=body,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def enqueue(session: Session, request: DeletionRequest, *, user: str | None = None) -> None:
    """Queue a webhook with ``request``'s current status; no-op without ``callback_url``.
    ``user``: the user's external id when the caller has it (saves a lookup). Never flushes
    by itself: the row goes in with the caller's transaction."""
    if not request.callback_url:
        return
    if user is None:
        found = session.get(User, request.user_id)
        user = found.external_id if found is not None else ""
    body = payload(
        request_id=request.id,
        status=request.status,
        scope=request.scope,
        user=user,
        item_count=request.item_count,
        model_version=request.model_version,
        occurred_at=utcnow(),
    )
    _add(session, request.id, request.status, body)


def enqueue_many(session: Session, request_ids: Iterable[uuid.UUID]) -> int:
    """``enqueue`` for requests changed by a bulk UPDATE: reads their current (post-update)
    columns from the database. Returns how many webhooks were queued."""
    ids = list(request_ids)
    if not ids:
        return 0
    rows = session.execute(
        select(
            DeletionRequest.id,
            DeletionRequest.status,
            DeletionRequest.scope,
            User.external_id,
            DeletionRequest.item_count,
            DeletionRequest.model_version,
        )
        .join(User, User.id == DeletionRequest.user_id)
        .where(DeletionRequest.id.in_(ids), DeletionRequest.callback_url.is_not(None))
        .order_by(DeletionRequest.created_at, DeletionRequest.id)
    ).all()
    now = utcnow()
    for rid, status, scope, user, count, version in rows:
        body = payload(
            request_id=rid,
            status=status,
            scope=scope,
            user=user,
            item_count=count,
            model_version=version,
            occurred_at=now,
        )
        _add(session, rid, status, body)
    return len(rows)
