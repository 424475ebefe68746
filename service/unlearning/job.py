"""Run one unlearning job: start -> unlearn (+ verify) -> publish -> complete.

This is the task wrapper: each phase runs in its own session and commits once, recording
on the job what it did, so a rerun after a crash resumes from the recorded state and
applies nothing twice:

- start: ``running``, attempts + 1, worker_id. A completed job (or one that failed for
  good) is returned untouched; a failed one is retried.
- unlearn: skipped when ``produced_version`` is recorded. Otherwise AltEraser unlearns every
  held row (and every deleted user) from the active version; the new checkpoint is
  registered, activated and recorded as ``produced_version`` in one commit.
- publish: ``publish(version)`` unless the version was superseded meanwhile (republishing
  it would roll serving back); then ``published``.
- complete: the job's requests become ``completed`` with the version, their item lists are
  redacted and their held rows purged; the job becomes ``completed``. One commit.

Any exception marks the job ``failed`` (its requests stay ``in_progress`` for a retry) and
is re-raised.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, null, select, update
from sqlalchemy.orm import Session, sessionmaker

from recsys.checkpoint import load_checkpoint
from recsys.config import MFConfig, NeuMFConfig, ProjectConfig, load_config
from recsys.device import pick_device
from recsys.engine import UnlearnReport, unlearn_checkpoint
from service.db.models import (
    DeletionRequest,
    HeldInteraction,
    JobStatus,
    ModelVersion,
    RequestStatus,
    UnlearningJob,
    utcnow,
)
from service.errors import AppError, NotFound
from service.model_versions.service import get_active_version, place_checkpoint, register_version
from service.settings import Settings
from service.unlearning.data import JobData, load_job_data
from service.unlearning.faults import pause_point
from service.unlearning.verify import deletion_ranks
from service.webhooks import outbox

log = logging.getLogger(__name__)

Publish = Callable[[ModelVersion], None]
MAX_ERROR = 2000


class NoActiveModel(AppError):
    code = "no_active_model"


class StaleBase(RuntimeError):
    """The active version changed while the job unlearned from the previous one."""


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_ERROR else flat[: MAX_ERROR - 3] + "..."


def _error_text(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")


def _get(session: Session, job_id: uuid.UUID) -> UnlearningJob:
    job = session.get(UnlearningJob, job_id)
    if job is None:
        raise NotFound(f"no unlearning job {str(job_id)!r}", details={"id": str(job_id)})
    return job


def _done(job: UnlearningJob) -> bool:
    # a failed job with finished_at set was given up (fail_job_permanently): not retried
    return job.status == JobStatus.completed or (
        job.status == JobStatus.failed and job.finished_at is not None
    )


def run_job(
    sessions: sessionmaker[Session],
    settings: Settings,
    job_id: uuid.UUID,
    *,
    publish: Publish,
    worker_id: str,
) -> UnlearningJob:
    """Run (or resume) the job to ``completed``; on error mark it ``failed`` and re-raise."""
    with sessions() as session:
        job = _get(session, job_id)
        if _done(job):
            return job
        was_published = job.status == JobStatus.published
        job.status = JobStatus.running
        job.attempts += 1
        job.worker_id = worker_id
        job.started_at = job.started_at or utcnow()
        produced = job.produced_version
        session.commit()
    try:
        if produced is None:
            _unlearn_phase(sessions, settings, job_id)
            pause_point("after_unlearn")  # crash tests kill the worker here (a no-op otherwise)
        pause_point("before_publish")
        _publish_phase(sessions, job_id, publish, already_published=was_published)
        return _complete_phase(sessions, job_id)
    except Exception as exc:
        _record_failure(sessions, job_id, exc)
        raise


def _record_failure(sessions: sessionmaker[Session], job_id: uuid.UUID, exc: Exception) -> None:
    log.error("unlearning job %s failed: %s", job_id, _error_text(exc))
    try:
        with sessions() as session:
            job = _get(session, job_id)
            job.status = JobStatus.failed
            job.error = _error_text(exc)
            session.commit()
    except Exception:  # the original error matters more than this one
        log.exception("could not record the failure of unlearning job %s", job_id)


def fail_job_permanently(session: Session, job: UnlearningJob, reason: str) -> None:
    """Give up on ``job``: it and its unfinished requests become ``failed`` with ``reason``.
    The requests' held rows stay held (out of serving and training). Flushes."""
    now, reason = utcnow(), one_line(reason)
    job.status = JobStatus.failed
    job.error = reason
    job.finished_at = job.finished_at or now
    failed = session.scalars(
        update(DeletionRequest)
        .where(
            DeletionRequest.job_id == job.id,
            DeletionRequest.status.in_([RequestStatus.in_progress, RequestStatus.pending]),
        )
        .values(status=RequestStatus.failed, failed_at=now, failure_reason=reason)
        .returning(DeletionRequest.id)
        .execution_options(synchronize_session="fetch")
    ).all()
    outbox.enqueue_many(session, failed)
    session.flush()


def _objective_config(cfg: ProjectConfig, meta: dict[str, Any]) -> ProjectConfig:
    """``cfg`` with the model section the checkpoint was trained with: AltEraser must
    minimise the training objective, or it would drift every row towards another optimum."""
    stored: dict[str, Any] = meta.get("model_config") or {}

    def kwargs(section: type) -> dict[str, Any]:
        known = {f.name for f in dataclasses.fields(section)}
        return {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items() if k in known}

    if meta.get("kind") == "mf":
        return dataclasses.replace(cfg, mf=MFConfig(**kwargs(MFConfig)))
    if meta.get("kind") == "neumf":
        return dataclasses.replace(cfg, neumf=NeuMFConfig(**kwargs(NeuMFConfig)))
    return cfg


def _lock_base(session: Session, base_version: str) -> None:
    """Lock the base version's row and check it is still the active one."""
    row = session.get(ModelVersion, base_version, with_for_update=True, populate_existing=True)
    if row is None or not row.active:
        now = get_active_version(session)
        raise StaleBase(
            f"the active model version changed from {base_version} to "
            f"{now.version if now else None} while unlearning; a retry starts from the new one"
        )


def _metrics(
    job: UnlearningJob,
    data: JobData,
    report: UnlearnReport,
    verify: dict[str, Any],
    digests: tuple[str | None, str],
    device: str,
) -> dict[str, Any]:
    return {
        "requests": len(job.request_ids),
        "job_pairs": data.job_pairs,
        "deleted_pairs": len(data.deleted_pairs),
        "deleted_users": int(data.deleted_users.numel()),
        "deleted_rows": report.deleted_rows,
        "rows_not_expressible": {
            "interactions": data.dropped_interactions,
            "held": data.dropped_held,
        },
        "train_digest_base": digests[0],
        "train_digest_data": digests[1],
        "digest_match": digests[0] == digests[1],
        "alteraser": {
            "rounds": report.rounds,
            "converged": report.converged,
            "seconds": report.seconds,
        },
        "device": device,
        "verify": verify,
    }


def _unlearn_phase(sessions: sessionmaker[Session], settings: Settings, job_id: uuid.UUID) -> None:
    """Unlearn every held row from the active version; register the result; one commit."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with sessions() as session:  # read only, closed before the long compute
        job = _get(session, job_id)
        base = get_active_version(session)
        if base is None:
            raise NoActiveModel("no active model version; run eraser train")
        base_version, location = base.version, base.location
        loaded = load_checkpoint(location)
        if loaded.user_ids is None or loaded.item_ids is None:
            raise AppError(f"{location}: the checkpoint has no id maps; retrain it with eraser")
        requests = {uuid.UUID(r) for r in job.request_ids}
        data = load_job_data(session, loaded.user_ids, loaded.item_ids, requests)
    cfg = _objective_config(load_config(settings.model_config_file), loaded.meta)
    timings["load"] = time.perf_counter() - t0
    model_dir = Path(settings.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unlearning-", dir=model_dir))
    final: Path | None = None
    committing = False
    try:
        t0 = time.perf_counter()
        # the whole engine call: reload, AltEraser, checkpoint written into the staging dir
        report = unlearn_checkpoint(
            location,
            data.before,
            staging / "checkpoint",
            cfg=cfg,
            deleted_pairs=data.deleted_pairs,
            deleted_users=data.deleted_users,
            device=settings.worker_device,
            check_digest=False,  # live data drifts (new imports); both digests are recorded
        )
        timings["unlearn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        device = pick_device(settings.worker_device)
        new = load_checkpoint(report.checkpoint)  # also proves the new checkpoint loads
        verify = deletion_ranks(
            loaded.model.to(device), new.model.to(device), data.deleted_pairs, data.deleted_users
        )
        timings["verify"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sha = str(new.meta["weights_sha256"])
        final = place_checkpoint(Path(report.checkpoint), model_dir, "unlearned", sha)
        version = final.name
        with sessions() as session:
            job = _get(session, job_id)
            _lock_base(session, base_version)
            digests = (loaded.meta.get("train_digest"), data.before.digest())
            metrics = _metrics(job, data, report, verify, digests, str(device))
            register_version(
                session,
                final,
                version=version,
                origin="unlearned",
                parent_version=base_version,
                activate=True,
                metrics={"job_id": str(job_id), **metrics},
            )
            job.base_version = base_version
            job.produced_version = version
            job.metrics = metrics
            timings["save"] = time.perf_counter() - t0
            job.timings = {**(job.timings or {}), **timings}
            committing = True  # from here a failed commit may still have committed: keep it
            session.commit()
    except BaseException:
        if final is not None and not committing:
            shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish_phase(
    sessions: sessionmaker[Session],
    job_id: uuid.UUID,
    publish: Publish,
    *,
    already_published: bool,
) -> None:
    t0 = time.perf_counter()
    with sessions() as session:
        job = _get(session, job_id)
        version = session.get(ModelVersion, job.produced_version)
        if version is None:
            raise AppError(
                f"job {job_id} produced {job.produced_version!r}, which is not registered"
            )
        if not version.active:
            # a newer version replaced it (it forgets these deletions too, being trained or
            # unlearned later): publishing this one would roll serving back
            active = get_active_version(session)
            job.metrics = {**job.metrics, "superseded_by": active.version if active else None}
        elif not already_published:
            publish(version)
            version.published_at = utcnow()
        job.status = JobStatus.published
        job.timings = {**job.timings, "publish": time.perf_counter() - t0}
        session.commit()


def _complete_phase(sessions: sessionmaker[Session], job_id: uuid.UUID) -> UnlearningJob:
    t0 = time.perf_counter()
    with sessions() as session:
        job = _get(session, job_id)
        now = utcnow()
        of_job = select(DeletionRequest.id).where(DeletionRequest.job_id == job.id)
        completed = session.scalars(
            update(DeletionRequest)
            .where(
                DeletionRequest.job_id == job.id,
                DeletionRequest.status == RequestStatus.in_progress,
            )
            .values(
                status=RequestStatus.completed,
                model_version=job.produced_version,
                completed_at=now,
                items=null(),  # redacted: item_count and items_sha256 stay for audit
            )
            .returning(DeletionRequest.id)
            .execution_options(synchronize_session="fetch")
        ).all()
        outbox.enqueue_many(session, completed)
        session.execute(
            delete(HeldInteraction)
            .where(HeldInteraction.request_id.in_(of_job))
            .execution_options(synchronize_session=False)
        )
        job.status = JobStatus.completed
        job.finished_at = now
        job.timings = {**job.timings, "complete": time.perf_counter() - t0}
        session.commit()
        session.refresh(job)
        return job
