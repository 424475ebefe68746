"""Job leases: which worker runs a job, and which jobs need re-running after a crash.

A worker takes a job with one conditional UPDATE, so two workers never run it at once; a
worker that dies leaves a lease that expires, after which the batcher tick re-enqueues the
job and the next worker resumes it from its recorded state.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import JobStatus, UnlearningJob, utcnow

log = logging.getLogger(__name__)

UNFINISHED = (JobStatus.queued, JobStatus.running, JobStatus.published, JobStatus.failed)
QUEUED = "(queued)"  # worker_id of a job whose message is on the queue, not yet taken


def acquire(session: Session, job_id: uuid.UUID, worker_id: str, lease_seconds: float) -> bool:
    """Take the job for ``lease_seconds`` unless another live worker holds it or it is done."""
    now = utcnow()
    result = session.execute(
        update(UnlearningJob)
        .where(
            UnlearningJob.id == job_id,
            UnlearningJob.status.in_([s.value for s in UNFINISHED]),
            or_(
                UnlearningJob.lease_expires_at.is_(None),
                UnlearningJob.lease_expires_at < now,
                UnlearningJob.worker_id.in_([worker_id, QUEUED]),
            ),
        )
        .values(worker_id=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, job_id: uuid.UUID) -> None:
    session.execute(
        update(UnlearningJob)
        .where(UnlearningJob.id == job_id)
        .values(lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


def reserve_for_queue(session: Session, job_id: uuid.UUID, lease_seconds: float) -> None:
    """Mark the job as enqueued, so the tick does not enqueue it again while it waits."""
    session.execute(
        update(UnlearningJob)
        .where(UnlearningJob.id == job_id)
        .values(worker_id=QUEUED, lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )


def jobs_to_resume(session: Session, *, max_attempts: int) -> list[uuid.UUID]:
    """Unfinished jobs nobody holds: new, released after a failure, or with an expired
    lease (the worker died, or the message waited longer than a lease)."""
    stmt = select(UnlearningJob.id).where(
        UnlearningJob.status.in_([s.value for s in UNFINISHED]),
        UnlearningJob.finished_at.is_(None),  # set once a job failed for good
        UnlearningJob.attempts < max_attempts,
        or_(UnlearningJob.lease_expires_at.is_(None), UnlearningJob.lease_expires_at < utcnow()),
    )
    return list(session.scalars(stmt))


def jobs_out_of_attempts(session: Session, *, max_attempts: int) -> list[UnlearningJob]:
    stmt = select(UnlearningJob).where(
        UnlearningJob.status.in_([s.value for s in UNFINISHED]),
        UnlearningJob.finished_at.is_(None),
        UnlearningJob.attempts >= max_attempts,
        or_(UnlearningJob.lease_expires_at.is_(None), UnlearningJob.lease_expires_at < utcnow()),
    )
    return list(session.scalars(stmt))


class LeaseKeeper:
    """Renews a job's lease every third of its length while the job runs, so a long job is
    never taken over from a live worker; a dead worker stops renewing and loses it."""

    def __init__(
        self, sessions: sessionmaker[Session], job_id: uuid.UUID, worker_id: str, seconds: float
    ) -> None:
        self.sessions, self.job_id, self.worker_id, self.seconds = (
            sessions,
            job_id,
            worker_id,
            seconds,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                with self.sessions() as session:
                    acquire(session, self.job_id, self.worker_id, self.seconds)
                    session.commit()
            except Exception:  # a database blip: try again next period; the lease has slack
                log.warning("could not renew the lease of job %s", self.job_id, exc_info=True)
