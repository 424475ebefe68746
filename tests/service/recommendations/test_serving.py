"""ModelHolder: startup load, hot reload, failed loads keep the old model, top_k masking."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from recsys.checkpoint import CheckpointError, load_checkpoint
from recsys.models.mf import MF
from service.db.models import ModelVersion
from service.model_versions.service import activate_version
from service.recommendations import serving
from service.recommendations.serving import ModelHolder, ServedModel
from tests.service.conftest import Backend, KeyMaker
from tests.service.recommendations.conftest import Live
from tests.service.recommendations.kit import USERS, Checkpoints, register

USER = "u5"


def model_scores(path: Path, user: str, items: list[str]) -> list[float]:
    loaded = load_checkpoint(path)
    model: Any = loaded.model
    assert loaded.item_ids is not None
    with torch.no_grad():
        scores = model.score_users(torch.tensor([USERS.index(user)]))[0]
    return [float(scores[loaded.item_ids.to_dense(i)]) for i in items]


def assert_served_by(body: dict[str, Any], version: str, path: Path) -> None:
    assert body["model_version"] == version and body["source"] == "model"
    items = [e["item"] for e in body["items"]]
    got = [e["score"] for e in body["items"]]
    assert got == pytest.approx(model_scores(path, body["user"], items), abs=1e-5)


def test_startup_loads_the_active_version(live: Live, seeded: Checkpoints) -> None:
    served = live.holder.current
    assert served is not None and served.version == "v1"
    assert not served.model.training
    assert_served_by(live.recs(USER, k=5), "v1", seeded.v1)


def test_activating_a_new_version_is_picked_up_by_maybe_refresh(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    assert not live.holder.maybe_refresh(live.app.state.sessions)  # nothing changed yet
    register(db, seeded.v2, "v2", activate=True)
    assert live.holder.maybe_refresh(live.app.state.sessions)
    assert live.holder.current is not None and live.holder.current.version == "v2"
    assert_served_by(live.recs(USER, k=5), "v2", seeded.v2)


def test_the_get_path_reloads_in_the_background(
    live: Live, db: Session, seeded: Checkpoints
) -> None:
    register(db, seeded.v2, "v2", activate=True)
    first = live.recs(USER, k=5)  # triggers the check; the load runs in a thread
    assert first["model_version"] in ("v1", "v2")
    deadline = time.monotonic() + 10
    while live.holder.current.version != "v2":  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "v2 was never loaded"
        time.sleep(0.02)
    assert_served_by(live.recs(USER, k=5), "v2", seeded.v2)


def test_refresh_is_not_checked_before_the_poll_interval(
    backend: Backend, db: Session, seeded: Checkpoints
) -> None:
    holder = ModelHolder(backend.settings.model_copy(update={"model_poll_seconds": 3600.0}))
    assert holder.try_load_active(backend.sessions)
    register(db, seeded.v2, "v2", activate=True)
    assert not holder.maybe_refresh(backend.sessions)
    assert holder.current is not None and holder.current.version == "v1"


def corrupt(src: Path, dst: Path, part: str) -> Path:
    shutil.copytree(src, dst)
    if part == "weights":  # sha256 no longer matches config.json
        data = (dst / "model.safetensors").read_bytes()
        (dst / "model.safetensors").write_bytes(data[: len(data) // 2])
    else:  # weights load fine, then the id maps fail their digest: a half-done load
        ids = json.loads((dst / "ids.json").read_text())
        ids["items"] = ids["items"][::-1]
        (dst / "ids.json").write_text(json.dumps(ids))
    return dst


@pytest.mark.parametrize("part", ["weights", "ids"])
def test_a_failed_load_keeps_serving_the_old_version(
    live: Live, db: Session, seeded: Checkpoints, tmp_path: Path, part: str
) -> None:
    register(db, corrupt(seeded.v2, tmp_path / "broken", part), "broken", activate=True)
    assert not live.holder.maybe_refresh(live.app.state.sessions)
    assert_served_by(live.recs(USER, k=5), "v1", seeded.v1)
    row = db.get(ModelVersion, "broken")
    assert row is not None
    with pytest.raises(CheckpointError):
        live.holder.load(row)
    assert live.holder.current is not None and live.holder.current.version == "v1"
    # a later good version is still picked up
    register(db, seeded.v2, "v2", activate=True)
    assert live.holder.maybe_refresh(live.app.state.sessions)
    assert_served_by(live.recs(USER, k=5), "v2", seeded.v2)


def test_a_broken_active_version_at_startup_serves_popularity(
    app: Any, db: Session, seeded: Checkpoints, tmp_path: Path, make_key: KeyMaker
) -> None:
    register(db, corrupt(seeded.v2, tmp_path / "broken", "weights"), "broken", activate=False)
    activate_version(db, "broken")
    db.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get(f"/v1/users/{USER}/recommendations", headers=make_key("admin"))
    assert r.status_code == 200
    assert r.json()["source"] == "popularity" and r.json()["model_version"] is None


def test_top_k_masks_excluded_items_and_never_returns_them() -> None:
    model = MF(1, 4, dim=1)
    with torch.no_grad():
        model.user_emb.fill_(1.0)
        model.item_emb.copy_(torch.tensor([[4.0], [3.0], [2.0], [1.0]]))
    items = ["a", "b", "c", "d"]
    served = ServedModel("t", model.eval(), {"x": 0}, items, {i: n for n, i in enumerate(items)})
    assert served.top_k("x", set(), 2) == [("a", 4.0), ("b", 3.0)]
    assert served.top_k("x", {"a", "c", "unknown"}, 10) == [("b", 3.0), ("d", 1.0)]
    assert served.top_k("x", set(items), 5) == []


def test_a_failed_version_is_retried_only_after_a_backoff(
    live: Live, db: Session, seeded: Checkpoints, tmp_path: Path
) -> None:
    broken = corrupt(seeded.v2, tmp_path / "broken", "weights")
    register(db, broken, "broken", activate=True)
    assert not live.holder.maybe_refresh(live.app.state.sessions)
    # the files get repaired (say a copy finished late): not re-read on the very next poll...
    shutil.rmtree(broken)
    shutil.copytree(seeded.v2, broken)
    assert not live.holder.maybe_refresh(live.app.state.sessions)
    # ...but once the backoff has passed
    assert live.holder._failed is not None
    assert live.holder._failed[1] - time.monotonic() > serving.FAILED_RETRY_SECONDS - 5
    live.holder._failed = ("broken", time.monotonic())
    assert live.holder.maybe_refresh(live.app.state.sessions)
    assert_served_by(live.recs(USER, k=5), "broken", seeded.v2)
