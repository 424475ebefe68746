import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from recsys.checkpoint import CheckpointError, load_checkpoint, read_meta, save_checkpoint
from recsys.config import MFConfig, NeuMFConfig
from recsys.data.idmap import IdMap
from recsys.models.base import Recommender
from recsys.models.mf import MF


def _mf() -> MF:
    return MF(5, 7, dim=4, generator=torch.Generator().manual_seed(0))


def _save(d: Path, model: torch.nn.Module | None = None, **kw: object) -> Path:
    return save_checkpoint(
        d,
        model if model is not None else _mf(),
        kind="mf",
        model_config=asdict(MFConfig(dim=4)),
        seed=3,
        train_digest="abc",
        **kw,  # type: ignore[arg-type]
    )


def test_mf_round_trip_gives_identical_scores_and_metadata(tmp_path: Path) -> None:
    model = _mf()
    users, items = IdMap.from_values(["a", "b", "c", "d", "e"]), IdMap.range(7)
    d = _save(tmp_path / "ck", model, user_ids=users, item_ids=items, extra={"epochs": 2})
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "ids.json", "model.safetensors"]
    loaded = load_checkpoint(d)
    assert isinstance(loaded.model, MF)
    all_users = torch.arange(5)
    assert torch.equal(loaded.model.score_users(all_users), model.score_users(all_users))
    meta = loaded.meta
    assert (meta["kind"], meta["n_users"], meta["n_items"], meta["seed"]) == ("mf", 5, 7, 3)
    assert meta["train_digest"] == "abc" and meta["extra"] == {"epochs": 2}
    assert meta["model_config"]["dim"] == 4
    assert meta["user_ids_digest"] == users.digest()
    assert loaded.user_ids == users and loaded.item_ids == items
    assert read_meta(d) == meta


def test_without_id_maps_no_ids_file(tmp_path: Path) -> None:
    loaded = load_checkpoint(_save(tmp_path / "ck"))
    assert loaded.user_ids is None and loaded.item_ids is None
    assert not (tmp_path / "ck" / "ids.json").exists()


def test_save_replaces_an_existing_checkpoint_and_leaves_no_temp_dirs(tmp_path: Path) -> None:
    _save(tmp_path / "ck")
    other = MF(5, 7, dim=4, generator=torch.Generator().manual_seed(9))
    _save(tmp_path / "ck", other)
    loaded = load_checkpoint(tmp_path / "ck")
    assert torch.equal(loaded.model.state_dict()["user_emb"], other.user_emb.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["ck"]


def test_tampered_weights_are_rejected(tmp_path: Path) -> None:
    d = _save(tmp_path / "ck")
    blob = bytearray((d / "model.safetensors").read_bytes())
    blob[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(d)


def test_tampered_ids_are_rejected(tmp_path: Path) -> None:
    d = _save(tmp_path / "ck", item_ids=IdMap.range(7))
    (d / "ids.json").write_text(json.dumps({"users": None, "items": list("abcdefg")}))
    with pytest.raises(CheckpointError, match="items id map"):
        load_checkpoint(d)


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_files(tmp_path: Path, missing: str) -> None:
    d = _save(tmp_path / "ck")
    (d / missing).unlink()
    with pytest.raises(CheckpointError, match=missing):
        load_checkpoint(d)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("format_version", 99, "format_version 99"), ("kind", "gpt", "'gpt'")],
)
def test_unknown_version_or_kind(tmp_path: Path, key: str, value: object, match: str) -> None:
    d = _save(tmp_path / "ck")
    meta = json.loads((d / "config.json").read_text())
    meta[key] = value
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(d)


def test_unknown_kind_and_wrong_id_map_size_are_refused_on_save(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="unknown model kind"):
        save_checkpoint(tmp_path / "x", _mf(), kind="gpt", model_config={}, seed=0, train_digest="")
    with pytest.raises(CheckpointError, match="user_ids has 2 ids"):
        _save(tmp_path / "y", user_ids=IdMap.range(2))
    assert list(tmp_path.iterdir()) == []


def test_config_that_does_not_fit_the_weights(tmp_path: Path) -> None:
    d = _save(tmp_path / "ck")
    meta = json.loads((d / "config.json").read_text())
    meta["model_config"]["dim"] = 5
    (d / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(d)


def test_neumf_round_trip(tmp_path: Path) -> None:
    neumf = pytest.importorskip("recsys.models.neumf")
    cfg = NeuMFConfig(gmf_dim=3, mlp_dim=2, mlp_layers=(4, 2))
    model = neumf.NeuMF(4, 6, cfg, generator=torch.Generator().manual_seed(0))
    d = save_checkpoint(
        tmp_path / "n", model, kind="neumf", model_config=asdict(cfg), seed=0, train_digest="x"
    )
    loaded = load_checkpoint(d).model
    assert isinstance(loaded, neumf.NeuMF) and isinstance(loaded, Recommender)
    users = torch.arange(4)
    assert torch.equal(loaded.score_users(users), model.score_users(users))
