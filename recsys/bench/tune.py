"""Hyper-parameter search on the validation split, and the `implicit` ALS sanity anchor.

`eraser tune --model mf` trains each grid point on the training split and ranks them by
NDCG@20 on the validation items; the chosen values go into configs/ml-latest-small.toml.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from recsys.config import ProjectConfig, TrainConfig
from recsys.data.interactions import Interactions
from recsys.data.split import Split
from recsys.metrics import hit_ndcg
from recsys.train.trainer import train

MF_GRID: dict[str, list[Any]] = {
    "dim": [64],
    "l2": [0.3, 1.0, 3.0, 10.0],
    "w0": [0.003, 0.01, 0.03, 0.1],
    "l2_exponent": [0.0],
}
NEUMF_GRID: dict[str, list[Any]] = {
    "l2": [1e-4, 1e-3, 1e-2],
    "neg_ratio": [4],
    "neg_weight": [0.3, 1.0],
}


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def tune(
    kind: str,
    split: Split,
    cfg: ProjectConfig,
    grid: dict[str, list[Any]],
    *,
    seed: int = 0,
    tol: float = 1e-4,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every grid point (to a looser ``tol``) and score it on validation; best first."""
    results = []
    for point in tqdm(grid_points(grid), desc=f"tune {kind}", disable=not progress):
        trial = replace(
            cfg,
            mf=replace(cfg.mf, **point) if kind == "mf" else cfg.mf,
            neumf=replace(cfg.neumf, **point) if kind == "neumf" else cfg.neumf,
            train=TrainConfig(tol=tol, max_epochs=cfg.train.max_epochs),
        )
        res = train(kind, split.train, trial, seed)
        hr, ndcg = hit_ndcg(res.model, split.train, split.valid, k=20)
        results.append({**point, "hr20": hr, "ndcg20": ndcg, "epochs": res.epochs})
    return sorted(results, key=lambda r: -r["ndcg20"])


def implicit_als_anchor(
    split: Split, factors: int, regularization: float, alpha: float, iterations: int, seed: int = 0
) -> dict[str, float]:
    """HR@20/NDCG@20 (test and validation) of the `implicit` library's ALS on the same split."""
    from implicit.als import AlternatingLeastSquares  # dev dependency, used by the bench only
    from scipy.sparse import csr_matrix

    tr: Interactions = split.train
    mat = csr_matrix(
        (np.ones(len(tr), dtype=np.float32), (tr.user.numpy(), tr.item.numpy())),
        shape=(tr.n_users, tr.n_items),
    )
    model = AlternatingLeastSquares(
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=iterations,
        random_state=seed,
    )
    t0 = time.perf_counter()
    model.fit(mat, show_progress=False)
    seconds = time.perf_counter() - t0

    class _Scores(torch.nn.Module):
        n_users, n_items = tr.n_users, tr.n_items

        def __init__(self) -> None:
            super().__init__()
            self.u = torch.nn.Parameter(torch.as_tensor(np.asarray(model.user_factors)))
            self.v = torch.nn.Parameter(torch.as_tensor(np.asarray(model.item_factors)))

        def score_users(self, users: torch.Tensor) -> torch.Tensor:
            return self.u[users] @ self.v.T

    scores = _Scores()
    hr_v, ndcg_v = hit_ndcg(scores, split.train, split.valid, k=20)
    hr, ndcg = hit_ndcg(scores, split.train, split.test, k=20)
    return {
        "hr20": hr,
        "ndcg20": ndcg,
        "valid_ndcg20": ndcg_v,
        "valid_hr20": hr_v,
        "seconds": seconds,
    }
