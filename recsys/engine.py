"""The small interface the service and the CLI use: train a checkpoint, unlearn into a new one.

Everything here works on checkpoint directories and Interactions, so callers (CLI, Celery
worker, in-process worker) need no knowledge of models, objectives or solvers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from recsys.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from recsys.config import ProjectConfig
from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.device import pick_device
from recsys.train.objectives import model_config
from recsys.train.trainer import train
from recsys.unlearn.alteraser import alteraser
from recsys.unlearn.api import UnlearnTask


@dataclass
class TrainReport:
    checkpoint: str
    kind: str
    epochs: int
    seconds: float
    converged: bool
    grad_norm: float
    final_loss: float


@dataclass
class UnlearnReport:
    checkpoint: str
    rounds: int
    seconds: float
    converged: bool
    deleted_rows: int
    deleted_users: int
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train_checkpoint(
    data: Interactions,
    out_dir: Path | str,
    *,
    kind: str,
    cfg: ProjectConfig,
    seed: int = 0,
    user_ids: IdMap | None = None,
    item_ids: IdMap | None = None,
    device: str | None = None,
    progress: bool = True,
) -> TrainReport:
    """Train ``kind`` on ``data`` to convergence and save it as a checkpoint."""
    res = train(kind, data, cfg, seed, progress=progress, device=pick_device(device))
    info = {"epochs": res.epochs, "seconds": res.seconds, "grad_norm": res.grad_norm}
    path = save_checkpoint(
        out_dir,
        res.model,
        kind=kind,
        model_config=model_config(kind, cfg),
        seed=seed,
        train_digest=data.digest(),
        user_ids=user_ids,
        item_ids=item_ids,
        extra={"origin": "trained", "training": info, "loss": res.losses[-1]},
    )
    return TrainReport(
        str(path), kind, res.epochs, res.seconds, res.converged, res.grad_norm, res.losses[-1]
    )


def unlearn_checkpoint(
    checkpoint_dir: Path | str,
    train_data: Interactions,
    out_dir: Path | str,
    *,
    cfg: ProjectConfig,
    deleted_pairs: Interactions | None = None,
    deleted_users: torch.Tensor | None = None,
    device: str | None = None,
    check_digest: bool = True,
) -> UnlearnReport:
    """Unlearn pairs and/or whole users from a checkpoint with AltEraser; save the result.

    ``train_data`` is the data the checkpoint was trained on (its digest is checked unless
    ``check_digest`` is False), so the remaining data is exactly ``train_data`` minus the
    deleted rows. A live service passes False: its data drifts (new imports) between
    versions, and AltEraser then fits the remaining data as it is now.
    """
    loaded = load_checkpoint(checkpoint_dir)
    meta = loaded.meta
    if check_digest and meta.get("train_digest") not in (None, train_data.digest()):
        raise CheckpointError(
            f"{checkpoint_dir}: the given training data (digest {train_data.digest()[:12]}) is not "
            f"the data this checkpoint was trained on ({str(meta['train_digest'])[:12]})"
        )
    task = UnlearnTask.build(train_data, deleted_pairs=deleted_pairs, deleted_users=deleted_users)
    kind, seed = str(meta["kind"]), int(meta.get("seed", 0))
    t0 = time.perf_counter()
    res = alteraser(loaded.model, task, kind, cfg, seed, device=pick_device(device))
    wall = time.perf_counter() - t0
    extra = {
        "origin": "unlearned",
        "parent_weights_sha256": meta.get("weights_sha256"),
        "unlearning": {"rounds": res.rounds, "seconds": wall, "converged": res.converged},
    }
    path = save_checkpoint(
        out_dir,
        res.model,
        kind=kind,
        model_config=meta["model_config"],
        seed=seed,
        train_digest=task.remaining.digest(),
        user_ids=loaded.user_ids,
        item_ids=loaded.item_ids,
        extra=extra,
    )
    return UnlearnReport(
        checkpoint=str(path),
        rounds=res.rounds,
        seconds=wall,
        converged=res.converged,
        deleted_rows=len(task.deleted),
        deleted_users=int(task.deleted_users.numel()),
        history=res.history,
    )
