"""`eraser demo` (what `make run` starts): train, delete, unlearn, and show what was forgotten."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import torch

from recsys.checkpoint import load_checkpoint
from recsys.config import ProjectConfig, load_config
from recsys.data.interactions import Interactions
from recsys.data.loaders import load_dataset
from recsys.data.split import leave_latest_out
from recsys.engine import train_checkpoint, unlearn_checkpoint
from recsys.metrics import hit_ndcg, rank_counts
from recsys.models.base import Recommender
from recsys.models.mf import MF
from recsys.train.trainer import train
from recsys.unlearn.api import UnlearnTask

DEFAULT_DATASET = Path(__file__).resolve().parent.parent / "data" / "ml-latest-small"


def _titles(dataset_dir: Path) -> dict[str, str]:
    movies = dataset_dir / "movies.csv"
    if not movies.is_file():
        return {}
    with movies.open(newline="", encoding="utf-8") as f:
        return {row["movieId"]: row["title"] for row in csv.DictReader(f)}


def _ranks(
    model: torch.nn.Module, remaining: Interactions, user: int, items: torch.Tensor
) -> list[int]:
    above, ties, _ = rank_counts(model, remaining, torch.full_like(items, user), items)
    return [int(r) + 1 for r in (above + ties).tolist()]


def run_demo(
    dataset: Path = DEFAULT_DATASET,
    out_dir: Path = Path("var/demo"),
    cfg: ProjectConfig | None = None,
    *,
    kind: str = "mf",
    seed: int = 0,
    compare_retrain: bool = True,
) -> int:
    cfg = cfg or load_config()
    ds = load_dataset(dataset)
    split = leave_latest_out(ds.interactions)
    print(
        f"dataset {ds.source}: {len(ds.interactions):,} interactions, "
        f"{len(ds.user_ids):,} users, {len(ds.item_ids):,} items"
    )
    served = train_checkpoint(
        split.train,
        out_dir / "served",
        kind=kind,
        cfg=cfg,
        seed=seed,
        user_ids=ds.user_ids,
        item_ids=ds.item_ids,
    )
    print(f"trained {kind}: {served.epochs} epochs in {served.seconds:.1f}s -> {served.checkpoint}")
    model = load_checkpoint(served.checkpoint).model
    assert isinstance(model, Recommender)

    # request 1: a typical user (median activity) forgets the 3 niche items (at most median
    # popularity) the model is surest of: a retrain has little else to recommend them from
    counts = split.train.user_counts()
    active = torch.nonzero(counts > 0)[:, 0]
    user = int(active[torch.argsort(counts[active])[active.numel() // 2]])
    own = split.train.item[split.train.user == user]
    popularity = split.train.item_counts().float()
    niche = own[popularity[own] <= popularity[own].median()]
    with torch.no_grad():
        scores = model.score(torch.full_like(niche, user), niche)
        forget = niche[torch.topk(scores, min(3, niche.numel())).indices]
    # request 2: another user asks to be forgotten entirely
    gone_user = int((split.train.user_counts() > 0).nonzero()[-1])
    pairs = Interactions.from_pairs(
        torch.full_like(forget, user), forget, split.train.n_users, split.train.n_items
    )
    task = UnlearnTask.build(
        split.train, deleted_pairs=pairs, deleted_users=torch.tensor([gone_user])
    )
    ext_user, ext_gone = ds.user_ids.to_external(user), ds.user_ids.to_external(gone_user)
    print(
        f"deletion requests: user {ext_user} forgets {len(forget)} items; "
        f"user {ext_gone} is deleted ({int((split.train.user == gone_user).sum())} interactions)"
    )

    report = unlearn_checkpoint(
        served.checkpoint,
        split.train,
        out_dir / "unlearned",
        cfg=cfg,
        deleted_pairs=pairs,
        deleted_users=torch.tensor([gone_user]),
    )
    unlearned = load_checkpoint(report.checkpoint).model
    print(
        f"AltEraser: {report.rounds} rounds in {report.seconds:.2f}s "
        f"(converged: {report.converged}) -> {report.checkpoint}"
    )

    columns = {"served": model, "AltEraser": unlearned}
    if compare_retrain:
        t0 = time.perf_counter()
        retrained = train(kind, task.remaining, cfg, seed, progress=True).model
        retrain_s = time.perf_counter() - t0
        columns["retrain"] = retrained
        print(
            f"retrain from scratch for comparison: {retrain_s:.1f}s "
            f"({retrain_s / max(report.seconds, 1e-9):.0f}x slower)"
        )
    titles = _titles(Path(ds.source) if Path(ds.source).is_dir() else Path(ds.source).parent)
    print(f"\nrank of the forgotten items for user {ext_user} (1 = top; lower = still remembered)")
    ranks = {name: _ranks(m, task.remaining, user, forget) for name, m in columns.items()}
    print(f"  {'item':<48}" + "".join(f"{name:>11}" for name in columns))
    for k, item in enumerate(forget.tolist()):
        ext = ds.item_ids.to_external(item)
        label = f"{ext} {titles.get(ext, '')}"[:47]
        print(f"  {label:<48}" + "".join(f"{ranks[n][k]:>11}" for n in columns))
    with torch.no_grad():
        norms = {
            n: float(m.user_emb[gone_user].norm()) for n, m in columns.items() if isinstance(m, MF)
        }
    print(
        f"\nuser {ext_gone}'s embedding norm: "
        + ", ".join(f"{n} {v:.3f}" for n, v in norms.items())
    )
    print("\nutility on the held-out test items (users with remaining data):")
    keep = torch.isin(split.test.user, task.remaining.user)
    test = split.test.subset(keep)
    for name, m in columns.items():
        hr, ndcg = hit_ndcg(m, task.remaining, test)
        print(f"  {name:<10} HR@20 {hr:.4f}  NDCG@20 {ndcg:.4f}")
    return 0
