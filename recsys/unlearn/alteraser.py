"""AltEraser (Liu et al. 2022): unlearning by alternating batched Newton steps.

Minimise the training objective on the remaining data, starting from the served model:
  round 0: only rows that touched the deleted data (affected users, deleted users, affected
           items), then the network block;
  round r: a convergence test picks the rows whose estimated Newton step
           ||grad_r|| / curvature_r would move them by more than step_tol relative to their
           norm; only those are re-solved (the deletion's influence spreads to unaffected
           rows only through shared terms such as the item Gramian, so few need it).
It stops when no row fails the test, or the objective's relative decrease per round falls
under cfg.unlearn.tol, or after cfg.unlearn.max_rounds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from recsys.config import ProjectConfig
from recsys.train.blocks import BlockObjective, BlockStats
from recsys.train.objectives import make_objective, row_norms
from recsys.unlearn.api import Snapshot, UnlearnTask


@dataclass
class UnlearnResult:
    model: nn.Module
    rounds: int
    seconds: float
    converged: bool
    history: list[dict[str, float]] = field(default_factory=list)


def _decrease(stats: BlockStats | None) -> float:
    return 0.0 if stats is None else stats.loss_before - stats.loss_after


def _rows_to_move(
    objective: BlockObjective, model: nn.Module, step_tol: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose estimated Newton step ||g_r|| / h_r exceeds step_tol * ||row_r||."""
    gu, gi = objective.row_grad_norms(model)
    hu, hi = objective.row_curvatures(model)
    nu, ni = row_norms(model)
    users = torch.nonzero(gu / hu > step_tol * (nu + 1e-8))[:, 0]
    items = torch.nonzero(gi / hi > step_tol * (ni + 1e-8))[:, 0]
    return users, items


def alteraser_iter(
    model: nn.Module,
    task: UnlearnTask,
    kind: str,
    cfg: ProjectConfig,
    seed: int,
    *,
    device: torch.device | None = None,
) -> Iterator[Snapshot]:
    """Unlearn ``task`` from a copy of ``model``; yield a Snapshot after every round.

    ``info``: loss, rel_decrease, users/items re-solved, converged (1.0 on the final snapshot
    when a stopping test passed rather than the round limit).
    """
    ucfg = cfg.unlearn
    clock = time.perf_counter()
    model = copy.deepcopy(model)
    if device is not None:
        model = model.to(device)
    dev = next(model.parameters()).device
    objective = make_objective(kind, task.remaining, cfg, seed)
    users = torch.unique(torch.cat([task.affected_users(), task.deleted_users])).to(dev)
    items = task.affected_items().to(dev)
    # Block steps report their exact decrease of the objective, so the loss itself is only
    # evaluated once, after round 0, to normalise the relative-decrease test.
    loss = math.nan
    # no need to converge tighter than the served model was trained (NeuMF's rule is looser)
    tol = max(ucfg.tol, cfg.train.stopping(kind)[0])
    spent = 0.0
    max_rounds = ucfg.neumf_max_rounds if kind == "neumf" else ucfg.max_rounds
    for rnd in range(max_rounds + 1):
        if rnd > 0:
            users = _rows_to_move(objective, model, ucfg.step_tol)[0]
        decrease = _decrease(objective.solve_users(model, users)) if users.numel() else 0.0
        if rnd > 0:
            items = _rows_to_move(objective, model, ucfg.step_tol)[1]
        if items.numel():
            decrease += _decrease(objective.solve_items(model, items))
        decrease += _decrease(objective.solve_network(model))
        if rnd == 0:
            rel = math.nan
        else:
            if math.isnan(loss):
                with torch.no_grad():
                    loss = float(objective.loss(model))
            else:
                loss -= decrease
            rel = decrease / max(abs(loss), 1e-12)
        quiet = rnd > 0 and users.numel() == 0 and items.numel() == 0
        converged = quiet or (rnd > 0 and abs(rel) < tol)
        spent += time.perf_counter() - clock
        info = {
            "loss": loss,
            "decrease": decrease,
            "rel_decrease": rel,
            "users_solved": float(users.numel()),
            "items_solved": float(items.numel()),
            "converged": float(converged),
        }
        yield Snapshot(rnd, spent, model, info)
        clock = time.perf_counter()
        if converged:
            return


def alteraser(
    model: nn.Module,
    task: UnlearnTask,
    kind: str,
    cfg: ProjectConfig,
    seed: int,
    *,
    device: torch.device | None = None,
) -> UnlearnResult:
    """Run AltEraser to its stopping rule; the input model is left untouched."""
    history: list[dict[str, float]] = []
    last: Snapshot | None = None
    for snap in alteraser_iter(model, task, kind, cfg, seed, device=device):
        history.append({"round": float(snap.budget), "seconds": snap.seconds, **snap.info})
        last = snap
    assert last is not None  # the generator always yields round 0
    return UnlearnResult(
        model=last.model,
        rounds=last.budget,
        seconds=last.seconds,
        converged=bool(last.info["converged"]),
        history=history,
    )
