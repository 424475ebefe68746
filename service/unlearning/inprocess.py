"""The embedded worker used when no Redis is configured: one daemon thread in the API process.

Every batch window it claims pending deletions into a job (one commit), then runs the
oldest job no worker holds: the new one, a failed one due for a retry, or one whose
worker died (expired lease). Leases keep two processes from running the same job.
Each tick also delivers the due signed status webhooks (service/webhooks/delivery.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import UnlearningJob
from service.settings import Settings
from service.unlearning import leases
from service.unlearning.batcher import claim_batch
from service.unlearning.job import Publish, fail_job_permanently, run_job
from service.webhooks.delivery import deliver_due

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
MIN_WAIT_SECONDS = 0.05  # a zero batch window must not spin
WEBHOOK_BATCH = 100  # most webhook POSTs per tick


class InProcessWorker:
    """``start()`` a daemon thread that claims and runs jobs; ``run_once()`` does one step."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        publish: Publish,
        *,
        worker_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.publish = publish
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:inprocess"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # job id -> monotonic time before which a failed job is not retried
        self._retry_at: dict[uuid.UUID, float] = {}

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="unlearning-worker", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to stop after its current job; True when it has stopped."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(max(self.settings.batch_window_seconds, MIN_WAIT_SECONDS)):
            try:
                while not self._stop.is_set() and self.run_once() is not None:
                    pass  # more work may be due: no need to wait a window
            except Exception:  # the thread must outlive a database outage
                log.exception("in-process unlearning worker step failed")
            try:
                deliver_due(self.sessions, self.settings, limit=WEBHOOK_BATCH)
            except Exception:
                log.exception("in-process webhook delivery failed")

    def run_once(self) -> uuid.UUID | None:
        """Claim a batch, then run one due job; its id (also when it failed), or None."""
        settings = self.settings
        with self.sessions() as session:
            claimed = claim_batch(session, max_requests=settings.max_batch_size)
            session.commit()
        job_id = self._next_job(claimed.id if claimed is not None else None)
        if job_id is None:
            return None
        with self.sessions() as session:
            taken = leases.acquire(session, job_id, self.worker_id, settings.job_lease_seconds)
            session.commit()
        if not taken:
            return None
        try:
            run_job(self.sessions, settings, job_id, publish=self.publish, worker_id=self.worker_id)
            self._retry_at.pop(job_id, None)
        except Exception:
            log.exception("unlearning job %s failed; it will be retried", job_id)
            self._back_off(job_id)
        finally:
            with self.sessions() as session:
                leases.release(session, job_id)
                session.commit()
        return job_id

    def _next_job(self, claimed: uuid.UUID | None) -> uuid.UUID | None:
        """The claimed job, else the oldest job due; gives up on jobs out of attempts."""
        max_attempts = self.settings.job_max_attempts
        with self.sessions() as session:
            for dead in leases.jobs_out_of_attempts(session, max_attempts=max_attempts):
                fail_job_permanently(
                    session, dead, f"gave up after {dead.attempts} attempts: {dead.error or ''}"
                )
            due = leases.jobs_to_resume(session, max_attempts=max_attempts)
            session.commit()
            if claimed is not None:
                return claimed
            now = time.monotonic()
            ready = [j for j in due if self._retry_at.get(j, 0.0) <= now]
            if not ready:
                return None
            stmt = (
                select(UnlearningJob.id)
                .where(UnlearningJob.id.in_(ready))
                .order_by(UnlearningJob.created_at, UnlearningJob.id)
                .limit(1)
            )
            return session.scalar(stmt)

    def _back_off(self, job_id: uuid.UUID) -> None:
        with self.sessions() as session:
            job = session.get(UnlearningJob, job_id)
            attempts = job.attempts if job is not None else 1
        delay = min(MAX_BACKOFF_SECONDS, max(1.0, self.settings.batch_window_seconds) * 2**attempts)
        self._retry_at[job_id] = time.monotonic() + delay
        log.info("unlearning job %s: next attempt in %.0f s", job_id, delay)
