"""Baselines that go through the same objective as AltEraser: retrain, warm-start AdamW, no-op."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator

import torch
from torch import nn

from recsys.config import ProjectConfig
from recsys.train.objectives import make_objective
from recsys.train.trainer import TrainResult, train
from recsys.unlearn.api import Snapshot, UnlearnTask


def retrain(
    task: UnlearnTask,
    kind: str,
    cfg: ProjectConfig,
    seed: int,
    *,
    device: torch.device | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train from the seed's initialisation on the remaining data, to the training tolerance."""
    return train(kind, task.remaining, cfg, seed, device=device, progress=progress)


def noop(model: nn.Module) -> nn.Module:
    """The served model unchanged: how much there is to forget."""
    return model


def warm_adamw_iter(
    model: nn.Module,
    task: UnlearnTask,
    kind: str,
    cfg: ProjectConfig,
    seed: int,
    *,
    lr: float,
    max_steps: int,
    every: int,
    device: torch.device | None = None,
) -> Iterator[Snapshot]:
    """Fine-tune a copy of ``model`` with full-batch AdamW on the remaining-data objective.

    The objective already holds the L2 term, so AdamW's decoupled weight decay is off:
    both methods minimise exactly the same function. Yields a Snapshot every ``every``
    steps (budget = steps done) and after the last one.
    """
    clock = time.perf_counter()
    model = copy.deepcopy(model)
    if device is not None:
        model = model.to(device)
    objective = make_objective(kind, task.remaining, cfg, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    spent = 0.0
    for step in range(1, max_steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = objective.loss(model)
        loss.backward()
        opt.step()
        if step % every == 0 or step == max_steps:
            spent += time.perf_counter() - clock
            yield Snapshot(step, spent, model, {"loss": float(loss.detach()), "lr": lr})
            clock = time.perf_counter()
