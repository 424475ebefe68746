"""Training: block-wise exact/damped Newton (ALS for MF) from a seeded init to a tolerance.

The same block solvers serve AltEraser, so "retrain" and "unlearn" minimise one objective.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from recsys.config import ProjectConfig
from recsys.data.interactions import Interactions
from recsys.train.blocks import BlockObjective
from recsys.train.objectives import make_model, make_objective
from recsys.unlearn.api import Snapshot


@dataclass
class TrainResult:
    model: nn.Module
    epochs: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    grad_norm: float = float("nan")
    converged: bool = False


def full_epoch(objective: BlockObjective, model: nn.Module, n_users: int, n_items: int) -> float:
    """One alternation over every block (users, items, network); returns the loss decrease."""
    device = next(model.parameters()).device
    blocks = [
        objective.solve_users(model, torch.arange(n_users, device=device)),
        objective.solve_items(model, torch.arange(n_items, device=device)),
        objective.solve_network(model),
    ]
    return sum(b.loss_before - b.loss_after for b in blocks if b is not None)


def total_grad_norm(objective: BlockObjective, model: nn.Module) -> float:
    gu, gi = objective.row_grad_norms(model)
    return float(torch.sqrt(gu.pow(2).sum() + gi.pow(2).sum()))


def train_iter(
    kind: str,
    data: Interactions,
    cfg: ProjectConfig,
    seed: int,
    *,
    init: nn.Module | None = None,
    device: torch.device | None = None,
    objective: BlockObjective | None = None,
) -> Iterator[Snapshot]:
    """Yield a Snapshot after every epoch until the relative decrease falls under cfg.train.tol.

    ``info`` carries ``loss`` and ``converged`` (1.0 on the last snapshot when it converged).
    """
    model = init if init is not None else make_model(kind, data.n_users, data.n_items, cfg, seed)
    if device is not None:
        model = model.to(device)
    if objective is None:
        objective = make_objective(kind, data, cfg, seed)
    spent = 0.0
    t0 = time.perf_counter()
    with torch.no_grad():
        # later values follow from the blocks' exact decreases, saving a loss pass per epoch
        cur = float(objective.loss(model))
    spent += time.perf_counter() - t0
    tol, max_epochs = cfg.train.stopping(kind)
    for epoch in range(1, max_epochs + 1):
        t0 = time.perf_counter()
        decrease = full_epoch(objective, model, data.n_users, data.n_items)
        prev, cur = cur, cur - decrease
        spent += time.perf_counter() - t0
        rel = decrease / max(abs(prev), 1e-12)
        converged = 0 <= rel < tol
        yield Snapshot(
            epoch, spent, model, {"loss": cur, "rel_decrease": rel, "converged": float(converged)}
        )
        if converged:
            return


def train(
    kind: str,
    data: Interactions,
    cfg: ProjectConfig,
    seed: int,
    *,
    init: nn.Module | None = None,
    progress: bool = False,
    device: torch.device | None = None,
) -> TrainResult:
    """Train ``kind`` on ``data`` from the seed's init (or ``init``) until converged."""
    losses: list[float] = []
    last: Snapshot | None = None
    bar = tqdm(
        total=cfg.train.stopping(kind)[1], desc=f"train {kind}", disable=not progress, leave=False
    )
    objective = make_objective(kind, data, cfg, seed)  # one for training and the final report
    for snap in train_iter(kind, data, cfg, seed, init=init, device=device, objective=objective):
        losses.append(snap.info["loss"])
        bar.update(1)
        bar.set_postfix(loss=f"{snap.info['loss']:.5g}", rel=f"{snap.info['rel_decrease']:.2e}")
        last = snap
    bar.close()
    if last is None:
        raise ValueError("train: cfg.train.max_epochs must be >= 1")
    with torch.no_grad():
        losses[-1] = float(objective.loss(last.model))  # exact, free of accumulated rounding
    return TrainResult(
        model=last.model,
        epochs=last.budget,
        seconds=last.seconds,
        losses=losses,
        grad_norm=total_grad_norm(objective, last.model),
        converged=bool(last.info["converged"]),
    )
