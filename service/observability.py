"""Prometheus metrics at ``GET /metrics`` and the request-id / access-log middleware.

``/metrics`` has no authentication: it exposes counts and versions, never ids, and is meant
to be scraped on the internal network only (do not route it through the public ingress).

Each app has its own ``CollectorRegistry`` (tests build many apps in one process). Series:

- ``rtbf_http_request_duration_seconds{method,route,status}`` histogram: ``route`` is the
  matched route's template (``/v1/users/{user}/recommendations``), never the raw path, and
  ``unmatched`` for paths no route matched; ``status`` is the class (``2xx``, ``4xx``, ...).
- read from the database at scrape time (left out when it cannot be read):
  ``rtbf_deletion_requests{status}`` (COUNT ... GROUP BY status, every status listed),
  ``rtbf_deletion_queue_depth`` (pending deletion requests),
  ``rtbf_unlearning_jobs{status}`` (queued and running included),
  ``rtbf_recent_job_phase_seconds{phase}`` / ``rtbf_recent_job_phase_jobs{phase}`` /
  ``rtbf_recent_job_phase_seconds_max{phase}``: the sum, the number of jobs and the maximum
  of each phase's duration (``unlearning_jobs.timings``) over the last
  ``RECENT_JOBS`` completed jobs (gauges over a sliding window, not counters: divide sum
  by jobs for the mean),
  ``rtbf_model_active{version} 1`` (the database's active version).
- ``rtbf_database_up`` 1 or 0: whether the reads above succeeded; a scrape never fails for
  a database outage.
- ``rtbf_model_served{version} 1``: the version this replica serves (absent without one);
  ``rtbf_model_feed_connected`` when the replica follows Redis.
- the process, platform and GC collectors of ``prometheus_client``.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable, Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.db.models import DeletionRequest, JobStatus, RequestStatus, UnlearningJob
from service.logging_setup import request_id_var
from service.model_versions.service import get_active_version

log = logging.getLogger(__name__)
access_log = logging.getLogger("service.access")

RECENT_JOBS = 100
REQUEST_ID_HEADER = "X-Request-ID"
# an incoming id is echoed only if it is short and plain (it goes into every log line)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (no auth: scrape on the internal network)",
    include_in_schema=False,
)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class StateCollector(Collector):
    """Series computed at scrape time from the database and this replica's state."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        state = self.app.state
        try:
            db_series = list(self._from_database())
            up = 1.0
        except Exception as exc:  # an outage must not fail the scrape
            log.warning("metrics: database not readable: %s", type(exc).__name__)
            db_series, up = [], 0.0
        yield from db_series
        yield GaugeMetricFamily(
            "rtbf_database_up", "1 if the database answered the metrics queries", value=up
        )
        served = GaugeMetricFamily(
            "rtbf_model_served", "the model version this replica serves", labels=["version"]
        )
        version = state.models.served_version
        if version is not None:
            served.add_metric([version], 1.0)
        yield served
        feed = getattr(state, "model_feed", None)
        if feed is not None:
            yield GaugeMetricFamily(
                "rtbf_model_feed_connected",
                "1 if this replica's Redis model feed is connected",
                value=1.0 if feed.connected else 0.0,
            )

    def _from_database(self) -> Iterator[Metric]:
        with self.app.state.sessions() as session:
            by_status = dict(
                session.execute(
                    select(DeletionRequest.status, func.count()).group_by(DeletionRequest.status)
                ).all()
            )
            jobs_by_status = dict(
                session.execute(
                    select(UnlearningJob.status, func.count()).group_by(UnlearningJob.status)
                ).all()
            )
            recent = session.scalars(
                select(UnlearningJob.timings)
                .where(UnlearningJob.status == JobStatus.completed)
                .order_by(UnlearningJob.finished_at.desc())
                .limit(RECENT_JOBS)
            ).all()
            active = get_active_version(session)
            active_version = active.version if active is not None else None

        deletions = GaugeMetricFamily(
            "rtbf_deletion_requests", "deletion requests by status", labels=["status"]
        )
        for status in [*RequestStatus, *sorted(set(by_status) - set(RequestStatus))]:
            deletions.add_metric([str(status)], float(by_status.get(status, 0)))
        yield deletions
        yield GaugeMetricFamily(
            "rtbf_deletion_queue_depth",
            "deletion requests waiting for an unlearning job (status pending)",
            value=float(by_status.get(RequestStatus.pending, 0)),
        )
        jobs = GaugeMetricFamily(
            "rtbf_unlearning_jobs", "unlearning jobs by status", labels=["status"]
        )
        for status in [*JobStatus, *sorted(set(jobs_by_status) - set(JobStatus))]:
            jobs.add_metric([str(status)], float(jobs_by_status.get(status, 0)))
        yield jobs

        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        maxima: dict[str, float] = {}
        for timings in recent:
            for phase, seconds in (timings or {}).items():
                if not isinstance(seconds, int | float):
                    continue
                sums[phase] = sums.get(phase, 0.0) + float(seconds)
                counts[phase] = counts.get(phase, 0) + 1
                maxima[phase] = max(maxima.get(phase, 0.0), float(seconds))
        window = f"over the last {RECENT_JOBS} completed unlearning jobs"
        total = GaugeMetricFamily(
            "rtbf_recent_job_phase_seconds", f"sum of phase durations {window}", labels=["phase"]
        )
        n = GaugeMetricFamily(
            "rtbf_recent_job_phase_jobs", f"jobs that recorded the phase {window}", labels=["phase"]
        )
        mx = GaugeMetricFamily(
            "rtbf_recent_job_phase_seconds_max",
            f"longest phase duration {window}",
            labels=["phase"],
        )
        for phase in sorted(sums):
            total.add_metric([phase], sums[phase])
            n.add_metric([phase], float(counts[phase]))
            mx.add_metric([phase], maxima[phase])
        yield from (total, n, mx)

        model = GaugeMetricFamily(
            "rtbf_model_active", "the database's active model version", labels=["version"]
        )
        if active_version is not None:
            model.add_metric([active_version], 1.0)
        yield model


class Metrics:
    """The app's registry and the request latency histogram."""

    def __init__(self, app: FastAPI) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "rtbf_http_request_duration_seconds",
            "HTTP request latency by route template, method and status class",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(StateCollector(app))
        # the process-wide collectors, shared (they read /proc and gc at scrape time)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)


def route_template(scope: Scope) -> str:
    """The matched route's path template; never the raw path (it holds user ids)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class ObservabilityMiddleware:
    """Request ids (``X-Request-ID`` in, or a new uuid4; echoed in the response and set on
    ``request_id_var`` for every log record of the request), the latency histogram and one
    access log line per request (method, route template, status, duration_ms)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        rid = incoming if incoming and _REQUEST_ID_OK.match(incoming) else str(uuid.uuid4())
        token = request_id_var.set(rid)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - t0
            route = route_template(scope)
            method = str(scope.get("method", ""))
            self.metrics.latency.labels(method, route, f"{status // 100}xx").observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def install_observability(app: FastAPI) -> None:
    """``app.state.metrics``, the middleware and ``/metrics``."""
    app.state.metrics = Metrics(app)
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    app.include_router(router)
