"""Job leases: one worker per job, and crashed or lost jobs come back to the queue."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from service.db.models import JobStatus, UnlearningJob, utcnow
from service.unlearning import leases
from tests.e2e.stack import wait_for
from tests.service.conftest import Backend


def _job(db: Session, **kw: object) -> uuid.UUID:
    job = UnlearningJob(id=uuid.uuid4(), request_ids=[], **{"status": JobStatus.queued, **kw})
    db.add(job)
    db.flush()
    return job.id


def test_one_worker_holds_a_job_until_its_lease_expires(db: Session) -> None:
    jid = _job(db)
    assert leases.acquire(db, jid, "w1", 60)
    assert not leases.acquire(db, jid, "w2", 60)  # w1 is alive
    assert leases.acquire(db, jid, "w1", 60)  # renewing one's own lease
    db.get(UnlearningJob, jid).lease_expires_at = utcnow() - timedelta(seconds=1)  # type: ignore[union-attr]
    db.flush()
    assert leases.acquire(db, jid, "w2", 60)  # w1 died: w2 takes over
    db.get(UnlearningJob, jid).status = JobStatus.completed  # type: ignore[union-attr]
    db.flush()
    leases.release(db, jid)
    assert not leases.acquire(db, jid, "w3", 60)  # finished jobs are never taken


def test_the_tick_enqueues_each_free_job_once_and_crashed_ones_again(db: Session) -> None:
    fresh = _job(db)
    expired = _job(
        db,
        status=JobStatus.running,
        worker_id="dead",
        lease_expires_at=utcnow() - timedelta(seconds=5),
        attempts=1,
    )
    held = _job(
        db,
        status=JobStatus.running,
        worker_id="alive",
        lease_expires_at=utcnow() + timedelta(seconds=60),
        attempts=1,
    )
    gave_up = _job(db, status=JobStatus.failed, attempts=5)
    finished = _job(db, status=JobStatus.failed, attempts=1, finished_at=utcnow())
    due = set(leases.jobs_to_resume(db, max_attempts=5))
    assert fresh in due and expired in due
    assert held not in due and gave_up not in due and finished not in due
    for jid in due:
        leases.reserve_for_queue(db, jid, 60)
    db.flush()
    assert not set(leases.jobs_to_resume(db, max_attempts=5)) & due  # not enqueued twice
    assert leases.acquire(db, fresh, "w1", 60)  # a reserved job is free for any worker
    assert [j.id for j in leases.jobs_out_of_attempts(db, max_attempts=5)] == [gave_up]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a thread with its own commits
def test_the_lease_keeper_renews_while_running_and_stops_after(backend: Backend) -> None:
    with backend.sessions() as s:
        jid = _job(s)
        assert leases.acquire(s, jid, "w1", 0.6)
        s.commit()

    def lease_end() -> datetime:
        with backend.sessions() as s:
            job = s.get(UnlearningJob, jid)
            assert job is not None and job.lease_expires_at is not None
            end = job.lease_expires_at
            return end if end.tzinfo else end.replace(tzinfo=UTC)

    with leases.LeaseKeeper(backend.sessions, jid, "w1", 0.6):
        wait_for(lambda: lease_end() > utcnow() + timedelta(seconds=0.3), timeout=5,
                 what="a renewal")  # fmt: skip
        first = lease_end()
        wait_for(lambda: lease_end() > first, timeout=5, what="a second renewal")
        with backend.sessions() as s:
            assert not leases.acquire(s, jid, "w2", 60)  # still held: never expired
    after = lease_end()
    wait_for(lambda: utcnow() > after, timeout=5, what="the lease to run out")
    with backend.sessions() as s:
        assert leases.acquire(s, jid, "w2", 60)  # no renewal after the keeper stopped
