"""The Celery application: Redis broker, two queues, late acks, a beat tick for the batcher.

Start it with:
    celery -A workers.celery_app worker -Q unlearning -c 1     # one job at a time per device
    celery -A workers.celery_app worker -Q default             # batcher and light work
    celery -A workers.celery_app beat                          # batch tick + webhooks
All configuration comes from the shared Settings (REDIS_URL, DATABASE_URL, RTBF_*).
"""

from __future__ import annotations

import logging

from celery import Celery

from service.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker = settings.redis_url or DEFAULT_BROKER
    if settings.redis_url is None:
        log.warning("REDIS_URL is not set; Celery uses %s", DEFAULT_BROKER)
    app = Celery("rtbf", broker=broker, include=["workers.tasks"])
    app.conf.update(
        task_default_queue="default",
        task_routes={
            "unlearning.*": {"queue": "unlearning"},
            "deletions.*": {"queue": "default"},
            "webhooks.*": {"queue": "default"},
        },
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # a job's message is acknowledged only after the job finished; a worker that dies
        # mid-job leaves it unacknowledged. Recovery does not wait for the broker though:
        # the batcher tick re-enqueues jobs whose lease expired (see workers/tasks.py)
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # longer than the longest job, or Redis would hand a running job to a second worker
        broker_transport_options={"visibility_timeout": settings.job_lease_seconds * 10},
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "deletions.tick": {
                "task": "deletions.tick",
                "schedule": max(settings.batch_window_seconds, 0.2),
            },
            # signed status webhooks from the outbox (service/webhooks/delivery.py)
            "webhooks.deliver": {"task": "webhooks.deliver", "schedule": 1.0},
        },
    )
    return app


app = make_celery()
