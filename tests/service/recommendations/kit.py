"""Shared by the serving, models and jobs tests: tiny trained checkpoints and DB helpers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from recsys.config import MFConfig, ProjectConfig, TrainConfig
from recsys.data.idmap import IdMap
from recsys.engine import train_checkpoint
from service.db.models import (
    DeletionRequest,
    HeldInteraction,
    Interaction,
    Item,
    User,
    utcnow,
)
from service.model_versions.service import register_version
from tests.recsys.conftest import random_interactions
from tests.service.conftest import add_interactions

N_USERS, N_ITEMS = 30, 40
USERS = [f"u{n}" for n in range(N_USERS)]
ITEMS = [f"i{n}" for n in range(N_ITEMS)]


@dataclass(frozen=True)
class Checkpoints:
    rows: list[tuple[str, str]]  # (user, item) external ids the checkpoints were trained on
    v1: Path
    v2: Path  # same data, another seed: other weights, other sha256


def train_checkpoints(root: Path) -> Checkpoints:
    """Two tiny converged MF checkpoints (about 0.3 s each) on 30 users x 40 items."""
    data = random_interactions(N_USERS, N_ITEMS, 300, seed=0)
    rows = [
        (USERS[u], ITEMS[i]) for u, i in zip(data.user.tolist(), data.item.tolist(), strict=True)
    ]
    cfg = ProjectConfig(
        mf=MFConfig(dim=8, l2=0.1, w0=0.05, c=1.0, init_std=0.1),
        train=TrainConfig(tol=1e-7, max_epochs=300),
    )
    dirs = []
    for seed in (0, 1):
        rep = train_checkpoint(
            data,
            root / f"seed{seed}",
            kind="mf",
            cfg=cfg,
            seed=seed,
            user_ids=IdMap(USERS),
            item_ids=IdMap(ITEMS),
            progress=False,
        )
        dirs.append(Path(rep.checkpoint))
    return Checkpoints(rows, dirs[0], dirs[1])


@pytest.fixture(autouse=True)
def restore_torch_threads() -> Iterator[None]:
    """Serving startup pins torch to one thread; later tests in this process should not be."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return train_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def register(session: Session, path: Path, version: str, *, activate: bool) -> None:
    register_version(session, path, version=version, origin="trained", activate=activate)
    session.commit()


def ids(session: Session, user: str, item: str | None = None) -> tuple[int, int | None]:
    uid = session.scalar(select(User.id).where(User.external_id == user))
    iid = None if item is None else session.scalar(select(Item.id).where(Item.external_id == item))
    assert uid is not None
    return uid, iid


def hold(session: Session, user: str, items: list[str], *, whole_user: bool = False) -> None:
    """What an accepted deletion does to the tables: rows move to held_interactions."""
    uid, _ = ids(session, user)
    request = DeletionRequest(
        fingerprint=hashlib.sha256(f"{user}{items}".encode()).hexdigest(),
        scope="user" if whole_user else "interactions",
        user_id=uid,
        items=items,
        item_count=len(items),
        items_sha256="0" * 64,
    )
    session.add(request)
    session.flush()
    for item in items:
        _, iid = ids(session, user, item)
        assert iid is not None
        session.execute(
            delete(Interaction).where(Interaction.user_id == uid, Interaction.item_id == iid)
        )
        session.add(
            HeldInteraction(request_id=request.id, user_id=uid, item_id=iid, value=1.0, ts=0)
        )
    if whole_user:
        session.execute(update(User).where(User.id == uid).values(deleted_at=utcnow()))
    session.commit()


__all__ = [
    "Checkpoints",
    "add_interactions",
    "checkpoints",
    "hold",
    "register",
    "restore_torch_threads",
]
