"""load_training_data (deterministic dense ids) and train_and_register (active version)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.checkpoint import load_checkpoint
from recsys.config import MFConfig, ProjectConfig, TrainConfig
from recsys.models.base import Recommender
from service.db.models import ModelVersion, User, utcnow
from service.model_versions.service import get_active_version
from service.training import NoTrainingData, load_training_data, train_and_register
from tests.service.conftest import Backend, add_interactions

TINY = ProjectConfig(mf=MFConfig(dim=4, l2=0.1, w0=0.1), train=TrainConfig(max_epochs=20))


def test_load_training_data_follows_internal_id_order(db: Session) -> None:
    db.add(User(external_id="lonely"))  # no interactions: gets no dense id
    db.flush()
    # users are created in order u9, u1 and items in order b, a, c (add_interactions)
    add_interactions(db, [("u9", "b"), ("u1", "a"), ("u9", "a"), ("u1", "c")], ts0=500)
    data = load_training_data(db)
    assert data.user_ids.to_list() == ["u9", "u1"]
    assert data.item_ids.to_list() == ["b", "a", "c"]
    inter = data.interactions
    assert (inter.n_users, inter.n_items) == (2, 3)
    pairs = list(zip(inter.user.tolist(), inter.item.tolist(), strict=True))
    assert pairs == [(0, 0), (0, 1), (1, 1), (1, 2)]  # sorted by (user id, item id)
    assert inter.ts.tolist() == [500, 502, 501, 503]  # carried with its row
    assert inter.value.tolist() == [1.0] * 4
    assert load_training_data(db).interactions.digest() == inter.digest()


def test_load_training_data_leaves_out_deleted_users(db: Session) -> None:
    add_interactions(db, [("a", "x"), ("b", "x"), ("b", "y")])
    user = db.scalars(select(User).where(User.external_id == "b")).one()
    user.deleted_at = utcnow()
    db.flush()
    data = load_training_data(db)
    assert data.user_ids.to_list() == ["a"] and data.item_ids.to_list() == ["x"]
    assert len(data.interactions) == 1


def test_train_and_register_needs_interactions(db: Session, backend: Backend) -> None:
    with pytest.raises(NoTrainingData, match="eraser import"):
        train_and_register(db, backend.settings, config=TINY, progress=False)
    assert get_active_version(db) is None


def test_train_and_register_activates_a_loadable_version(db: Session, backend: Backend) -> None:
    rows = [(f"u{u}", f"i{(u * 3 + k) % 12}") for u in range(15) for k in range(4)]
    add_interactions(db, rows)
    row = train_and_register(
        db, backend.settings, config=TINY, device="cpu", progress=False, seed=1
    )
    assert get_active_version(db) is row and row.active and row.kind == "trained"
    assert row.version.startswith("trained-") and row.model_kind == "mf"
    assert {"epochs", "seconds", "final_loss"} <= set(row.metrics)
    model_dir = Path(backend.settings.model_dir)
    assert Path(row.location) == (model_dir / row.version).resolve()
    assert [p.name for p in model_dir.iterdir()] == [row.version]  # no staging left behind
    loaded = load_checkpoint(row.location)
    data = load_training_data(db)
    assert loaded.meta["train_digest"] == data.interactions.digest() == row.train_digest
    assert loaded.user_ids == data.user_ids and loaded.item_ids == data.item_ids
    assert (row.n_users, row.n_items) == (15, 12)
    assert loaded.meta["weights_sha256"].startswith(row.version.rsplit("-", 1)[1])
    assert isinstance(loaded.model, Recommender)
    assert torch.isfinite(loaded.model.score_users(torch.tensor([0, 14]))).all()

    second = train_and_register(db, backend.settings, config=TINY, device="cpu", progress=False)
    assert second.active and not row.active  # the newest trained version is the active one
    assert len(db.scalars(select(ModelVersion)).all()) == 2
