"""Claim pending deletion requests into one unlearning job.

Postgres locks the claimed rows with ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent
claimers take disjoint sets and a concurrent cancel either wins the row lock (the claim
skips it) or waits and then sees ``in_progress`` (409). SQLite serialises writers; the
conditional UPDATE below still claims a request only while it is pending.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import DeletionRequest, JobStatus, RequestStatus, UnlearningJob, utcnow
from service.webhooks import outbox


def claim_batch(session: Session, *, max_requests: int) -> UnlearningJob | None:
    """The oldest pending requests (up to ``max_requests``) as a new ``queued`` job; None
    when nothing is pending. Flushes, never commits."""
    if max_requests < 1:
        raise ValueError(f"max_requests must be >= 1, got {max_requests}")
    stmt = (
        select(DeletionRequest.id)
        .where(DeletionRequest.status == RequestStatus.pending)
        .order_by(DeletionRequest.created_at, DeletionRequest.id)
        .limit(max_requests)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    ids = list(session.scalars(stmt))
    if not ids:
        return None
    now = utcnow()
    # the job row first: the requests' job_id references it
    job = UnlearningJob(id=uuid.uuid4(), status=JobStatus.queued, request_ids=[], created_at=now)
    session.add(job)
    session.flush()
    claimed = session.execute(
        update(DeletionRequest)
        .where(DeletionRequest.id.in_(ids), DeletionRequest.status == RequestStatus.pending)
        .values(status=RequestStatus.in_progress, started_at=now, job_id=job.id)
        .returning(DeletionRequest.id, DeletionRequest.created_at)
    ).all()
    if not claimed:  # every one was cancelled in between (SQLite only: Postgres holds locks)
        session.delete(job)
        session.flush()
        return None
    job.request_ids = [str(rid) for rid, _ in sorted(claimed, key=lambda r: (r[1], str(r[0])))]
    outbox.enqueue_many(session, [rid for rid, _ in claimed])  # in_progress webhooks
    session.flush()
    return job
