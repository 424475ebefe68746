"""Hot-swap: make a stored model version the active one and publish it to every replica.

Ordering: the activation is flushed (not committed) first, then published, and the caller
commits only after the publish succeeded. A failed publish (Redis down, checkpoint
unreadable) raises, so the request's session rolls back and the registry is unchanged. The
flushed UPDATE holds the version rows' locks until the commit, so concurrent hot-swaps
publish in the order they commit and Redis ends on the version the registry says is active.
Should the commit fail after a publish, ``restore`` re-publishes the previous version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import DeletionRequest, ModelVersion, RequestStatus, utcnow
from service.errors import AppError
from service.hotswap.publisher import Publisher
from service.model_versions.service import activate_version, get_active_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HotSwap:
    """A published version, when, and the one it replaced (a detached copy, for ``restore``)."""

    version: str
    published_at: datetime
    previous: ModelVersion | None

    @property
    def previous_version(self) -> str | None:
        return self.previous.version if self.previous is not None else None


def _detached(row: ModelVersion) -> ModelVersion:
    # what a publisher reads, outside the session: usable even after a failed commit
    return ModelVersion(version=row.version, location=row.location, sha256=row.sha256)


class WouldReexpose(AppError):
    status_code = 409
    code = "would_reexpose_deleted_data"


def reexposed_requests(session: Session, version: str) -> tuple[int, list[str]]:
    """Completed deletions whose data ``version`` may still carry: those unlearned in a version
    that is not ``version`` or one of its ancestors, and completed after the training run at
    the root of its lineage (a model trained later never saw their purged rows)."""
    lineage: list[ModelVersion] = []
    row = session.get(ModelVersion, version)
    while row is not None and len(lineage) < 10_000:
        lineage.append(row)
        row = session.get(ModelVersion, row.parent_version) if row.parent_version else None
    if not lineage:
        return 0, []
    trained_at = lineage[-1].created_at
    unsafe = (
        DeletionRequest.status == RequestStatus.completed,
        DeletionRequest.model_version.not_in([v.version for v in lineage]),
        DeletionRequest.completed_at > trained_at,
    )
    count = session.scalar(select(func.count()).select_from(DeletionRequest).where(*unsafe))
    examples = session.scalars(select(DeletionRequest.id).where(*unsafe).limit(5))
    return int(count or 0), [str(e) for e in examples]


def hot_swap(
    session: Session, publisher: Publisher, version: str, *, allow_reexposure: bool = False
) -> HotSwap:
    """Activate ``version`` (404 when unknown) and publish it; the caller commits after.
    Refuses (409) a version that may still carry completed deletions' data, unless
    ``allow_reexposure``. Raises whatever the publisher raises, with nothing committed."""
    if session.get(ModelVersion, version) is not None:
        count, examples = reexposed_requests(session, version)
        if count and not allow_reexposure:
            raise WouldReexpose(
                f"{version!r} predates {count} completed deletion(s): serving it would show "
                "their data again. Hot-swap to a version unlearned after them, retrain, or "
                "pass allow_reexposure=true for an incident rollback (logged)",
                details={"completed_deletions": count, "examples": examples},
            )
        if count:
            log.warning(
                "hot-swap to %s re-exposes %d completed deletion(s) (allow_reexposure)",
                version,
                count,
            )
    before = get_active_version(session)
    previous = None if before is None else _detached(before)
    row = activate_version(session, version)
    publisher.publish(row)
    row.published_at = utcnow()
    session.flush()
    return HotSwap(row.version, row.published_at, previous)


def restore(publisher: Publisher, swap: HotSwap) -> None:
    """Best effort after a failed commit: publish the version the registry still says is
    active, so replicas and registry agree again."""
    if swap.previous is None:
        log.error("hot-swap to %s not recorded; no previous version to restore", swap.version)
        return
    try:
        publisher.publish(swap.previous)
    except Exception:
        log.exception(
            "hot-swap to %s not recorded and %s could not be re-published; replicas serve a "
            "version the registry does not mark active",
            swap.version,
            swap.previous.version,
        )
