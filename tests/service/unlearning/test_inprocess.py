"""The embedded worker: claims pending deletions and runs their job, in a call or a thread."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from service.db.models import UnlearningJob
from service.unlearning.inprocess import InProcessWorker
from tests.service.unlearning.conftest import RecordingPublisher, World, requests_by_id


def test_run_once_processes_a_pending_deletion_end_to_end(world: World) -> None:
    publisher = RecordingPublisher()
    worker = InProcessWorker(world.backend.sessions, world.settings, publisher, worker_id="w1")
    assert worker.run_once() is None  # nothing pending: no job
    rid = world.delete_items("u3", world.items_of("u3")[:2])
    job_id = worker.run_once()
    assert job_id is not None
    with world.backend.sessions() as s:
        job = s.get(UnlearningJob, job_id)
        assert job is not None and job.status == "completed" and job.worker_id == "w1"
        assert job.lease_expires_at is None  # released
        r = requests_by_id(s)[rid]
        assert r.status == "completed" and r.model_version == job.produced_version
    assert publisher.calls == [job.produced_version]
    assert worker.run_once() is None


def test_run_once_retries_a_failed_job_after_its_backoff(world: World) -> None:
    publisher = RecordingPublisher(fail_first=ConnectionError("down"))
    worker = InProcessWorker(world.backend.sessions, world.settings, publisher, worker_id="w1")
    rid = world.delete_items("u4", world.items_of("u4")[:1])
    job_id = worker.run_once()
    assert job_id is not None
    with world.backend.sessions() as s:
        assert s.get(UnlearningJob, job_id).status == "failed"  # type: ignore[union-attr]
    assert worker.run_once() is None  # backing off
    worker._retry_at[job_id] = 0.0  # the backoff has passed
    assert worker.run_once() == job_id
    with world.backend.sessions() as s:
        job = s.get(UnlearningJob, job_id)
        assert job is not None and job.status == "completed" and job.attempts == 2
        assert requests_by_id(s)[rid].status == "completed"


# the Postgres backend is one shared connection; two threads need the SQLite engine's pool
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_thread_processes_deletions_until_stopped(world: World) -> None:
    publisher = RecordingPublisher()
    worker = InProcessWorker(world.backend.sessions, world.settings, publisher)
    worker.start()
    try:
        rid = world.delete_items("u5", world.items_of("u5")[:1])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with world.backend.sessions() as s:
                if requests_by_id(s)[rid].status == "completed":
                    break
            time.sleep(0.05)
    finally:
        assert worker.stop(timeout=30)
    with world.backend.sessions() as s:
        assert requests_by_id(s)[rid].status == "completed"
        jobs = list(s.scalars(select(UnlearningJob.id)))
    assert len(jobs) == 1 and isinstance(jobs[0], uuid.UUID) and len(publisher.calls) == 1
