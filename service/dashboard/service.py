"""The dashboard's reads: counts, recent jobs, versions, failures and two small SVG plots.

Only counts, statuses, timings and versions leave here: never a request's item ids (the
``items`` column is not even selected).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import (
    DeletionRequest,
    JobStatus,
    ModelVersion,
    RequestStatus,
    UnlearningJob,
    utcnow,
)

RECENT_JOBS = 20
RECENT_FAILURES = 20
RECENT_VERSIONS = 10
PLOT_POINTS = 50
PHASES = ("load", "unlearn", "verify", "publish")

# plot geometry (px): the drawing area sits inside these margins
PLOT_W, PLOT_H = 460, 180
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 52, 12, 12, 28


def _aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def human_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _stamp(t: datetime | None) -> str:
    t = _aware(t)
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if t is not None else "-"


@dataclass
class JobRow:
    id: str
    status: str
    size: int
    created: str
    finished: str
    attempts: int
    timings: dict[str, str]
    rank_before: str
    rank_after: str
    produced_version: str
    error: str | None


@dataclass
class VersionRow:
    version: str
    kind: str
    created: str
    active: bool
    served: bool


@dataclass
class Failure:
    what: str  # "request" | "job"
    id: str
    when: str
    reason: str


@dataclass
class Plot:
    """An SVG line plot computed here; the template only draws what is in it."""

    title: str
    y_label: str
    width: int = PLOT_W
    height: int = PLOT_H
    points: list[tuple[float, float]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)  # (y px, label)
    x_labels: list[tuple[float, str]] = field(default_factory=list)  # (x px, label)

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)

    @property
    def left(self) -> int:
        return MARGIN_L

    @property
    def right(self) -> int:
        return self.width - MARGIN_R

    @property
    def top(self) -> int:
        return MARGIN_T

    @property
    def bottom(self) -> int:
        return self.height - MARGIN_B


def make_plot(title: str, y_label: str, series: list[tuple[datetime, float]]) -> Plot:
    """Points (time, seconds) scaled into the plot area; y from 0 to the maximum."""
    plot = Plot(title=title, y_label=y_label)
    if not series:
        return plot
    series = sorted(series)
    t0, t1 = series[0][0].timestamp(), series[-1][0].timestamp()
    span = (t1 - t0) or 1.0
    y_max = max(v for _, v in series) or 1.0
    w, h = plot.right - plot.left, plot.bottom - plot.top
    for t, v in series:
        x = plot.left + (w * (t.timestamp() - t0) / span if t1 > t0 else w / 2)
        y = plot.bottom - h * v / y_max
        plot.points.append((x, y))
    plot.y_ticks = [(plot.bottom - h * f, human_seconds(y_max * f)) for f in (0.0, 0.5, 1.0)]
    plot.x_labels = [
        (float(plot.left), series[0][0].strftime("%H:%M:%S")),
        (float(plot.right), series[-1][0].strftime("%H:%M:%S")),
    ]
    return plot


@dataclass
class Dashboard:
    generated: str
    requests_by_status: dict[str, int]
    requests_total: int
    oldest_pending_age: str
    pending_requests: int
    jobs_by_status: dict[str, int]
    jobs: list[JobRow]
    versions: list[VersionRow]
    active_version: str | None
    served_version: str | None
    switched_at: str
    failures: list[Failure]
    # every live replica's heartbeat (Redis mode); empty in the embedded mode
    replicas: list[dict[str, Any]]
    latency_plot: Plot
    unlearn_plot: Plot


def _job_row(job: UnlearningJob) -> JobRow:
    timings = job.timings or {}
    verify = (job.metrics or {}).get("verify") or {}
    if not isinstance(verify, dict):
        verify = {}
    phases = [p for p in PHASES if p in timings] + sorted(set(timings) - set(PHASES))
    before, after = _num(verify.get("mean_rank_before")), _num(verify.get("mean_rank_after"))
    return JobRow(
        id=str(job.id),
        status=job.status,
        size=len(job.request_ids or []),
        created=_stamp(job.created_at),
        finished=_stamp(job.finished_at),
        attempts=job.attempts,
        timings={p: human_seconds(_num(timings[p])) for p in phases},
        rank_before=f"{before:.1f}" if before is not None else "-",
        rank_after=f"{after:.1f}" if after is not None else "-",
        produced_version=job.produced_version or "-",
        error=job.error,
    )


def collect(
    session: Session,
    *,
    served_version: str | None,
    switched_at: datetime | None,
    replicas: list[dict[str, Any]] | None = None,
) -> Dashboard:
    now = utcnow()
    by_status: dict[str, int] = {
        str(s): int(n)
        for s, n in session.execute(
            select(DeletionRequest.status, func.count()).group_by(DeletionRequest.status)
        ).all()
    }
    requests_by_status = {str(s): by_status.pop(str(s), 0) for s in RequestStatus}
    requests_by_status.update(sorted(by_status.items()))
    jobs_raw: dict[str, int] = {
        str(s): int(n)
        for s, n in session.execute(
            select(UnlearningJob.status, func.count()).group_by(UnlearningJob.status)
        ).all()
    }
    jobs_by_status = {str(s): jobs_raw.pop(str(s), 0) for s in JobStatus}
    jobs_by_status.update(sorted(jobs_raw.items()))

    oldest = _aware(
        session.scalar(
            select(func.min(DeletionRequest.created_at)).where(
                DeletionRequest.status == RequestStatus.pending
            )
        )
    )
    oldest_age = human_seconds((now - oldest).total_seconds()) if oldest is not None else "-"

    jobs = list(
        session.scalars(
            select(UnlearningJob)
            .order_by(UnlearningJob.created_at.desc(), UnlearningJob.id.desc())
            .limit(RECENT_JOBS)
        )
    )
    versions = list(
        session.scalars(
            select(ModelVersion).order_by(ModelVersion.created_at.desc()).limit(RECENT_VERSIONS)
        )
    )
    active = session.scalar(select(ModelVersion.version).where(ModelVersion.active.is_(True)))

    failures: list[Failure] = []
    failed_requests = session.execute(
        select(DeletionRequest.id, DeletionRequest.failed_at, DeletionRequest.failure_reason)
        .where(DeletionRequest.status == RequestStatus.failed)
        .order_by(DeletionRequest.failed_at.desc())
        .limit(RECENT_FAILURES)
    ).all()
    for rid, failed_at, reason in failed_requests:
        failures.append(Failure("request", _short(rid), _stamp(failed_at), reason or "-"))
    failed_jobs = session.execute(
        select(UnlearningJob.id, UnlearningJob.finished_at, UnlearningJob.error)
        .where(UnlearningJob.status == JobStatus.failed)
        .order_by(UnlearningJob.finished_at.desc())
        .limit(RECENT_FAILURES)
    ).all()
    for jid, finished_at, error in failed_jobs:
        failures.append(Failure("job", _short(jid), _stamp(finished_at), error or "-"))

    completed = session.execute(
        select(DeletionRequest.created_at, DeletionRequest.completed_at)
        .where(
            DeletionRequest.status == RequestStatus.completed,
            DeletionRequest.completed_at.is_not(None),
        )
        .order_by(DeletionRequest.completed_at.desc())
        .limit(PLOT_POINTS)
    ).all()
    latency: list[tuple[datetime, float]] = []
    for created_at, completed_at in completed:
        c, d = _aware(created_at), _aware(completed_at)
        if c is not None and d is not None:
            latency.append((d, max((d - c).total_seconds(), 0.0)))
    unlearn_rows = session.execute(
        select(UnlearningJob.finished_at, UnlearningJob.created_at, UnlearningJob.timings)
        .where(UnlearningJob.status.in_([JobStatus.completed, JobStatus.published]))
        .order_by(UnlearningJob.created_at.desc())
        .limit(PLOT_POINTS)
    ).all()
    unlearn: list[tuple[datetime, float]] = []
    for finished_at, created_at, timings in unlearn_rows:
        seconds = _num((timings or {}).get("unlearn"))
        when = _aware(finished_at) or _aware(created_at)
        if seconds is not None and when is not None:
            unlearn.append((when, seconds))

    return Dashboard(
        generated=_stamp(now),
        requests_by_status=requests_by_status,
        requests_total=sum(requests_by_status.values()),
        oldest_pending_age=oldest_age,
        pending_requests=requests_by_status.get(RequestStatus.pending, 0),
        jobs_by_status=jobs_by_status,
        jobs=[_job_row(j) for j in jobs],
        versions=[
            VersionRow(
                version=v.version,
                kind=v.kind,
                created=_stamp(v.created_at),
                active=v.active,
                served=v.version == served_version,
            )
            for v in versions
        ],
        active_version=active,
        served_version=served_version,
        switched_at=_stamp(switched_at),
        failures=failures,
        replicas=replicas or [],
        latency_plot=make_plot(
            "End-to-end deletion latency (completed requests)", "seconds", latency
        ),
        unlearn_plot=make_plot("Unlearning time per job", "seconds", unlearn),
    )


def _short(value: uuid.UUID | str) -> str:
    return str(value)[:8]
