"""Deliver the webhook outbox: signed POSTs with retries and per-request ordering.

Each row is POSTed to its request's ``callback_url`` with::

    Content-Type: application/json
    X-RTBF-Timestamp: <unix seconds>
    X-RTBF-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.".encode() + body)>
    X-RTBF-Delivery: <outbox row id>   (delivery is at least once: receivers dedupe on it)

A 2xx marks the row delivered. Anything else (an error status, a timeout, a refused
connection) counts a failed attempt, records ``last_error`` and schedules a retry after
``min(backoff * 2**attempts, 300 s)`` with jitter; after ``webhook_max_attempts`` failed
attempts the row is given up (``next_attempt_at`` None, ``last_error`` kept).

Claiming: due rows are taken with ``FOR UPDATE SKIP LOCKED`` on Postgres and leased (their
``next_attempt_at`` pushed past the POST's timeout) in a short transaction, so no database
transaction stays open during HTTP and concurrent deliverers take disjoint rows; a
deliverer that dies leaves its rows due again when the lease runs out. A row never goes
out while an earlier, not given-up row of the same request is undelivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from service.db.models import DeletionRequest, WebhookDelivery, utcnow
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0
LEASE_MARGIN_SECONDS = 30.0
MAX_ERROR = 2000
SIGNATURE_VERSION = "v1"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed with ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def headers_for(secret: str, delivery_id: int, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "rtbf-webhooks/1",
        "X-RTBF-Timestamp": str(timestamp),
        "X-RTBF-Signature": f"{SIGNATURE_VERSION}={sign(secret, timestamp, body)}",
        "X-RTBF-Delivery": str(delivery_id),
    }


def backoff_seconds(base: float, attempts: int) -> float:
    """The delay before the next try after ``attempts`` failed ones, with jitter."""
    delay = min(base * 2.0 ** min(attempts, 32), MAX_BACKOFF_SECONDS)
    return delay * random.uniform(0.75, 1.0)


@dataclass
class _Claimed:
    id: int
    url: str
    payload: dict[str, Any]


def _claim(session: Session, settings: Settings, limit: int) -> list[_Claimed]:
    now = utcnow()
    earlier = aliased(WebhookDelivery)
    blocked = (
        exists()
        .where(
            earlier.request_id == WebhookDelivery.request_id,
            earlier.id < WebhookDelivery.id,
            earlier.delivered_at.is_(None),
            earlier.next_attempt_at.is_not(None),
        )
        .correlate(WebhookDelivery)
    )
    stmt = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.delivered_at.is_(None),
            WebhookDelivery.next_attempt_at.is_not(None),
            WebhookDelivery.next_attempt_at <= now,
            ~blocked,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=WebhookDelivery)
    ids = list(session.scalars(stmt))
    if not ids:
        return []
    lease = now + timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(next_attempt_at=lease)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        select(WebhookDelivery.id, DeletionRequest.callback_url, WebhookDelivery.payload)
        .join(DeletionRequest, DeletionRequest.id == WebhookDelivery.request_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    ).all()
    return [_Claimed(rid, url or "", payload) for rid, url, payload in rows]


def _post(client: httpx.Client, secret: str, row: _Claimed) -> str | None:
    """POST one delivery; None on a 2xx, else the error."""
    if not row.url:
        return "the request has no callback_url"
    body = encode_body(row.payload)
    headers = headers_for(secret, row.id, body, int(time.time()))
    try:
        response = client.post(row.url, content=body, headers=headers)
    except Exception as exc:  # timeouts, refused connections, bad URLs: all retried
        return f"{type(exc).__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def _record(session: Session, settings: Settings, delivery_id: int, error: str | None) -> None:
    now = utcnow()
    row = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if row is None or row.delivered_at is not None:
        return
    if error is None:
        row.delivered_at = now
        row.next_attempt_at = None  # last_error of earlier failed attempts stays
        return
    row.attempts += 1
    row.last_error = " ".join(error.split())[:MAX_ERROR]
    if row.attempts >= settings.webhook_max_attempts:
        row.next_attempt_at = None  # given up; last_error says why
        log.warning(
            "webhook delivery %s given up after %d attempts: %s",
            delivery_id,
            row.attempts,
            row.last_error,
        )
    else:
        delay = backoff_seconds(settings.webhook_backoff_seconds, row.attempts)
        row.next_attempt_at = now + timedelta(seconds=delay)


def deliver_due(sessions: sessionmaker[Session], settings: Settings, *, limit: int = 100) -> int:
    """POST due webhooks (at most ``limit`` tries); how many were delivered (2xx).
    Never raises for a receiver's failure: those are recorded on the row and retried."""
    delivered = tried = 0
    with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False) as client:
        while tried < limit:
            with sessions() as session:
                batch = _claim(session, settings, limit - tried)
                session.commit()
            if not batch:
                break
            for row in batch:
                error = _post(client, settings.webhook_secret, row)
                tried += 1
                with sessions() as session:
                    _record(session, settings, row.id, error)
                    session.commit()
                if error is None:
                    delivered += 1
                else:
                    log.info("webhook delivery %s failed: %s", row.id, error)
    return delivered
