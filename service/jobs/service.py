"""Reads of unlearning jobs: one by id, or a keyset page newest first."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.models import JobStatus, UnlearningJob
from service.errors import NotFound
from service.paging import encode_cursor, older_than

Page = tuple[list[UnlearningJob], str | None]


def get_job(session: Session, job_id: uuid.UUID) -> UnlearningJob:
    job = session.get(UnlearningJob, job_id)
    if job is None:
        raise NotFound(f"no unlearning job {str(job_id)!r}", details={"id": str(job_id)})
    return job


def list_jobs(
    session: Session, *, status: JobStatus | None, limit: int, cursor: str | None
) -> Page:
    """Up to ``limit`` jobs newest first after ``cursor``, and the cursor of the next page."""
    stmt = select(UnlearningJob)
    if status is not None:
        stmt = stmt.where(UnlearningJob.status == status.value)
    if cursor:
        stmt = stmt.where(older_than(UnlearningJob.created_at, UnlearningJob.id, cursor))
    stmt = stmt.order_by(UnlearningJob.created_at.desc(), UnlearningJob.id.desc())
    # one extra row tells whether another page exists without a count query
    rows = list(session.scalars(stmt.limit(limit + 1)))
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return page, next_cursor
