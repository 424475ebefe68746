"""Train a model on the data repository and register it as the active model version."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.checkpoint import read_meta
from recsys.config import ProjectConfig, load_config
from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.engine import train_checkpoint
from service.db.models import Interaction, Item, ModelVersion, User
from service.errors import AppError
from service.model_versions.service import place_checkpoint, register_version
from service.settings import Settings


class NoTrainingData(AppError):
    """The ``interactions`` table is empty: there is nothing to train on."""

    code = "no_training_data"


@dataclass(frozen=True)
class TrainingData:
    """The ``interactions`` table as dense-id Interactions plus the maps to external ids."""

    interactions: Interactions
    user_ids: IdMap
    item_ids: IdMap


def load_training_data(session: Session) -> TrainingData:
    """Every stored interaction; dense ids follow users.id / items.id order over the users
    and items that have at least one, so the same table always gives the same result."""
    # deleted users' rows leave `interactions` with the deletion; the filter is a second guard
    stmt = (
        select(Interaction.user_id, Interaction.item_id, Interaction.value, Interaction.ts)
        .join(User, User.id == Interaction.user_id)
        .where(User.deleted_at.is_(None))
        .order_by(Interaction.user_id, Interaction.item_id)
    )
    rows = session.execute(stmt).all()
    n = len(rows)
    u = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    i = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    value = np.fromiter((r[2] for r in rows), dtype=np.float32, count=n)
    ts = np.fromiter((r[3] for r in rows), dtype=np.int64, count=n)
    u_keys, u_dense = np.unique(u, return_inverse=True)
    i_keys, i_dense = np.unique(i, return_inverse=True)
    return TrainingData(
        interactions=Interactions.from_pairs(
            torch.from_numpy(u_dense.astype(np.int64)),
            torch.from_numpy(i_dense.astype(np.int64)),
            len(u_keys),
            len(i_keys),
            value=torch.from_numpy(value),
            ts=torch.from_numpy(ts),
        ),
        user_ids=IdMap(_external_ids(session, User, u_keys.tolist())),
        item_ids=IdMap(_external_ids(session, Item, i_keys.tolist())),
    )


def _external_ids(session: Session, model: type[User] | type[Item], ids: list[int]) -> list[str]:
    """External ids of the given internal ids, in the given (ascending) order."""
    if not ids:
        return []
    lo, hi = ids[0], ids[-1]
    stmt = select(model.id, model.external_id).where(model.id >= lo, model.id <= hi)
    # one range scan instead of a huge IN list; ids between lo and hi without rows are dropped
    by_id = {int(k): str(e) for k, e in session.execute(stmt)}
    return [by_id[k] for k in ids]


def train_and_register(
    session: Session,
    settings: Settings,
    *,
    kind: str = "mf",
    seed: int = 0,
    config: ProjectConfig | None = None,
    device: str | None = None,
    progress: bool = True,
) -> ModelVersion:
    """Train ``kind`` on the ``interactions`` table, save it under ``settings.model_dir``
    and register it as the active version. Flushes, never commits."""
    data = load_training_data(session)
    if len(data.interactions) == 0:
        raise NoTrainingData(
            "the database has no interactions to train on; run `eraser import --dataset PATH` first"
        )
    cfg = config or load_config(settings.model_config_file)
    model_dir = Path(settings.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # the name holds the weights' sha, known only once saved: save aside, then rename into place
    staging = Path(tempfile.mkdtemp(prefix=".training-", dir=model_dir))
    final: Path | None = None
    try:
        report = train_checkpoint(
            data.interactions,
            staging / "checkpoint",
            kind=kind,
            cfg=cfg,
            seed=seed,
            user_ids=data.user_ids,
            item_ids=data.item_ids,
            device=device,
            progress=progress,
        )
        sha = str(read_meta(report.checkpoint)["weights_sha256"])
        final = place_checkpoint(Path(report.checkpoint), model_dir, "trained", sha)
        version = final.name
        metrics = {
            "epochs": report.epochs,
            "seconds": report.seconds,
            "final_loss": report.final_loss,
            "converged": report.converged,
            "grad_norm": report.grad_norm,
            "interactions": len(data.interactions),
            "seed": seed,
        }
        return register_version(
            session, final, version=version, origin="trained", metrics=metrics, activate=True
        )
    except BaseException:
        # a checkpoint no registry row points at would only confuse later readers
        if final is not None:
            shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
