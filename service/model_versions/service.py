"""Model versions: register a checkpoint directory, activate one, read the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.db.models import ModelVersion, utcnow
from service.errors import AppError, NotFound

ORIGINS = ("trained", "unlearned", "retrained")


def new_version_name(origin: str, weights_sha256: str) -> str:
    """A sortable, content-addressed name such as ``trained-20261128T101500-1a2b3c4d``."""
    return f"{origin}-{utcnow():%Y%m%dT%H%M%S}-{weights_sha256[:8]}"


def place_checkpoint(checkpoint: Path, model_dir: Path, origin: str, weights_sha256: str) -> Path:
    """Move a freshly saved checkpoint to its content-addressed place under ``model_dir``
    (a rename on the same filesystem: atomic); returns the new directory, named as the
    version to register."""
    version = name = new_version_name(origin, weights_sha256)
    n = 1
    # identical weights saved twice within one second would get the same name
    while (model_dir / name).exists():
        n += 1
        name = f"{version}-{n}"
    final = model_dir / name
    Path(checkpoint).rename(final)
    return final


def read_checkpoint_meta(checkpoint_dir: Path) -> dict[str, Any]:
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise AppError(f"{checkpoint_dir}: no checkpoint there (missing config.json)")
    meta: dict[str, Any] = json.loads(path.read_text())
    return meta


def register_version(
    session: Session,
    checkpoint_dir: Path,
    *,
    version: str,
    origin: str,
    parent_version: str | None = None,
    metrics: dict[str, Any] | None = None,
    activate: bool = False,
) -> ModelVersion:
    """Record the checkpoint at ``checkpoint_dir`` as ``version``; optionally make it the
    active one. Flushes, never commits."""
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}")
    meta = read_checkpoint_meta(checkpoint_dir)
    row = ModelVersion(
        version=version,
        parent_version=parent_version,
        kind=origin,
        model_kind=str(meta["kind"]),
        location=str(Path(checkpoint_dir).resolve()),
        sha256=str(meta["weights_sha256"]),
        train_digest=str(meta["train_digest"]),
        n_users=int(meta["n_users"]),
        n_items=int(meta["n_items"]),
        metrics=metrics or {},
    )
    session.add(row)
    session.flush()
    if activate:
        activate_version(session, version)
    return row


def activate_version(session: Session, version: str) -> ModelVersion:
    """Make ``version`` the only active version (the one serving should load)."""
    row = session.get(ModelVersion, version)
    if row is None:
        raise NotFound(f"no model version {version!r}", details={"version": version})
    session.execute(
        update(ModelVersion).where(ModelVersion.version != version).values(active=False)
    )
    row.active = True
    row.published_at = utcnow()
    session.flush()
    return row


def get_active_version(session: Session) -> ModelVersion | None:
    return session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True))).first()


def list_versions(session: Session, limit: int = 100) -> list[ModelVersion]:
    stmt = select(ModelVersion).order_by(ModelVersion.created_at.desc()).limit(limit)
    return list(session.scalars(stmt))
