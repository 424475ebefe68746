import json
from pathlib import Path

import pytest
import torch

from recsys.checkpoint import CheckpointError, load_checkpoint
from recsys.cli import main
from recsys.config import ProjectConfig
from recsys.data.interactions import Interactions
from recsys.data.loaders import load_dataset
from recsys.data.split import leave_latest_out
from recsys.engine import train_checkpoint, unlearn_checkpoint
from tests.recsys.conftest import as_mf, random_interactions


def test_train_then_unlearn_checkpoints(tmp_path: Path, small_cfg: ProjectConfig) -> None:
    data = random_interactions(30, 40, 300, seed=0)
    rep = train_checkpoint(data, tmp_path / "v1", kind="mf", cfg=small_cfg, progress=False)
    assert rep.converged
    meta = load_checkpoint(rep.checkpoint).meta
    assert meta["train_digest"] == data.digest() and meta["extra"]["origin"] == "trained"
    pairs = data.subset(torch.arange(5))
    out = unlearn_checkpoint(
        rep.checkpoint,
        data,
        tmp_path / "v2",
        cfg=small_cfg,
        deleted_pairs=pairs,
        deleted_users=torch.tensor([7]),
    )
    v2 = load_checkpoint(out.checkpoint)
    remaining = data.without_pairs(pairs).without_users(torch.tensor([7]))
    assert v2.meta["train_digest"] == remaining.digest()
    assert v2.meta["extra"]["parent_weights_sha256"] == meta["weights_sha256"]
    assert out.deleted_users == 1 and out.deleted_rows == 5 + int((data.user == 7).sum()) - int(
        (pairs.user == 7).sum()
    )
    assert float(as_mf(v2.model).user_emb.detach()[7].abs().max()) == 0.0


def test_unlearn_refuses_other_training_data(tmp_path: Path, small_cfg: ProjectConfig) -> None:
    data = random_interactions(30, 40, 300, seed=0)
    rep = train_checkpoint(data, tmp_path / "v1", kind="mf", cfg=small_cfg, progress=False)
    other = random_interactions(30, 40, 300, seed=1)
    with pytest.raises(CheckpointError, match="not the data this checkpoint was trained on"):
        unlearn_checkpoint(rep.checkpoint, other, tmp_path / "v2", cfg=small_cfg)


def test_unlearn_without_digest_check_accepts_drifted_data(
    tmp_path: Path, small_cfg: ProjectConfig
) -> None:
    data = random_interactions(30, 40, 300, seed=0)
    rep = train_checkpoint(data, tmp_path / "v1", kind="mf", cfg=small_cfg, progress=False)
    # the live data gained rows since training (new imports): only a service skips the check
    extra = Interactions.from_pairs(torch.tensor([0, 1]), torch.tensor([39, 38]), 30, 40)
    drifted = Interactions.from_pairs(
        torch.cat([data.user, extra.user]), torch.cat([data.item, extra.item]), 30, 40
    )
    assert not bool(torch.isin(extra.pair_keys(), data.pair_keys()).any())
    pairs = data.subset(torch.arange(3))
    with pytest.raises(CheckpointError, match="not the data"):  # checked by default
        unlearn_checkpoint(rep.checkpoint, drifted, tmp_path / "v2", cfg=small_cfg)
    out = unlearn_checkpoint(
        rep.checkpoint,
        drifted,
        tmp_path / "v2",
        cfg=small_cfg,
        deleted_pairs=pairs,
        check_digest=False,
    )
    assert out.deleted_rows == 3
    assert load_checkpoint(out.checkpoint).meta["train_digest"] == (
        drifted.without_pairs(pairs).digest()
    )


def _ratings(path: Path, n_users: int = 25, n_items: int = 30) -> Path:
    data = random_interactions(n_users, n_items, 400, seed=3)
    lines = ["userId,movieId,rating,timestamp"]
    lines += [
        f"{u + 1},{i + 100},4.0,{k}"
        for k, (u, i) in enumerate(zip(data.user.tolist(), data.item.tolist(), strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(path: Path) -> Path:
    path.write_text("[mf]\ndim = 8\nl2 = 0.1\nw0 = 0.1\n[train]\ntol = 1e-6\n")
    return path


def _unlearn_cli(ckpt: Path, ratings: Path, deletions: Path, out: Path, cfg: Path) -> int:
    args = ["unlearn", "--checkpoint", str(ckpt), "--dataset", str(ratings)]
    return main([*args, "--delete", str(deletions), "--out", str(out), "--config", str(cfg)])


def test_cli_train_and_unlearn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings, cfg = _ratings(tmp_path / "ratings.csv"), _config(tmp_path / "cfg.toml")
    ckpt = tmp_path / "v1"
    assert (
        main(
            [
                "train-checkpoint",
                "--dataset",
                str(ratings),
                "--out",
                str(ckpt),
                "--config",
                str(cfg),
            ]
        )
        == 0
    )
    trained = json.loads(capsys.readouterr().out)
    assert trained["converged"] and 0.0 <= trained["test_ndcg20"] <= 1.0
    deletions = tmp_path / "delete.csv"
    deletions.write_text("user,item\n1,\n2,100\n")
    code = _unlearn_cli(ckpt, ratings, deletions, tmp_path / "v2", cfg)
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    ds = load_dataset(ratings)
    train = leave_latest_out(ds.interactions).train  # what the checkpoint was trained on
    u1, u2, i100 = ds.user_ids.to_dense("1"), ds.user_ids.to_dense("2"), ds.item_ids.to_dense("100")
    expected = int((train.user == u1).sum()) + int(
        ((train.user == u2) & (train.item == i100)).sum()
    )
    assert report["deleted_users"] == 1 and report["deleted_rows"] == expected
    v2 = load_checkpoint(tmp_path / "v2")
    assert v2.user_ids is not None
    assert float(as_mf(v2.model).user_emb.detach()[v2.user_ids.to_dense("1")].abs().max()) == 0.0


def test_cli_unlearn_names_unknown_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ratings, cfg = _ratings(tmp_path / "ratings.csv"), _config(tmp_path / "cfg.toml")
    assert (
        main(
            [
                "train-checkpoint",
                "--dataset",
                str(ratings),
                "--out",
                str(tmp_path / "v1"),
                "--config",
                str(cfg),
            ]
        )
        == 0
    )
    capsys.readouterr()
    deletions = tmp_path / "delete.csv"
    deletions.write_text("user,item\n999,100\n")
    code = _unlearn_cli(tmp_path / "v1", ratings, deletions, tmp_path / "v2", cfg)
    assert code == 2
    err = capsys.readouterr().err
    assert "999" in err and "delete.csv" in err


def test_interactions_helpers_are_consistent() -> None:
    data = Interactions.from_pairs(torch.tensor([0, 0, 1]), torch.tensor([1, 2, 1]), 2, 3)
    assert len(data.without_pairs(data.subset(torch.tensor([0])))) == 2
    assert data.digest() == data.subset(torch.tensor([2, 1, 0])).digest()
