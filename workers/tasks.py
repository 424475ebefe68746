"""Celery tasks: ids in, a session per task, logic in ``service.unlearning``.

- ``deletions.tick`` (queue ``default``, every batch window from beat): claims pending
  requests into a job and enqueues it; re-enqueues jobs whose worker died (expired lease)
  or whose message was lost; fails for good jobs out of attempts.
- ``webhooks.deliver`` (queue ``default``, every second from beat): POSTs the due signed
  status webhooks of the outbox (``service.webhooks.delivery``).
- ``unlearning.run_job`` (queue ``unlearning``): takes the job's lease, runs it (idempotent,
  resumes from the recorded phase), releases the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from functools import cache
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.db.models import utcnow
from service.db.session import make_engine, make_sessionmaker, session_scope
from service.settings import Settings, get_settings
from service.unlearning import leases
from workers.celery_app import app

log = logging.getLogger(__name__)

WEBHOOK_BATCH = 100  # most webhook POSTs per beat tick


@cache
def _sessions() -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(get_settings().database_url))


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _publisher(settings: Settings) -> Any:
    from service.hotswap.publisher import RedisPublisher

    if settings.redis_url is None:
        raise RuntimeError("the Celery pipeline publishes through Redis: set REDIS_URL")
    return RedisPublisher(settings.redis_url, settings.redis_prefix)


@app.task(name="deletions.tick", ignore_result=True)
def tick() -> dict[str, int]:
    """Claim one batch, then enqueue every job no worker holds (new ones, retries after a
    failure, and jobs whose worker died: expired lease)."""
    from service.unlearning.batcher import claim_batch
    from service.unlearning.job import fail_job_permanently

    settings = get_settings()
    sessions = _sessions()
    with session_scope(sessions) as session:
        claimed = claim_batch(session, max_requests=settings.max_batch_size)
    with session_scope(sessions) as session:
        for dead in leases.jobs_out_of_attempts(session, max_attempts=settings.job_max_attempts):
            fail_job_permanently(
                session, dead, f"gave up after {dead.attempts} attempts: {dead.error or ''}"
            )
            dead.finished_at = dead.finished_at or utcnow()
        due = leases.jobs_to_resume(session, max_attempts=settings.job_max_attempts)
        for job_id in due:
            leases.reserve_for_queue(session, job_id, settings.job_lease_seconds)
    for job_id in due:  # enqueued only after the reservation is committed
        run_job.apply_async((str(job_id),), queue="unlearning")
    return {"claimed": int(claimed is not None), "enqueued": len(due)}


@app.task(name="webhooks.deliver", ignore_result=True)
def deliver_webhooks() -> int:
    """Deliver due webhooks; concurrent runs take disjoint rows (SKIP LOCKED)."""
    from service.webhooks.delivery import deliver_due

    return deliver_due(_sessions(), get_settings(), limit=WEBHOOK_BATCH)


@app.task(name="unlearning.run_job", ignore_result=True, acks_late=True)
def run_job(job_id: str) -> str:
    """Run one unlearning job if no live worker holds it; idempotent."""
    from service.unlearning.job import run_job as run

    settings = get_settings()
    sessions = _sessions()
    jid, me = uuid.UUID(job_id), _worker_id()
    with session_scope(sessions) as session:
        if not leases.acquire(session, jid, me, settings.job_lease_seconds):
            log.info("job %s is held by another worker or finished; skipping", job_id)
            return "skipped"
    try:
        with leases.LeaseKeeper(sessions, jid, me, settings.job_lease_seconds):
            done = run(sessions, settings, jid, publish=_publisher(settings).publish, worker_id=me)
        return str(done.status)
    finally:
        with session_scope(sessions) as session:
            leases.release(session, jid)
