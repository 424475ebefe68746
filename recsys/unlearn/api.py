"""Types shared by AltEraser and the baselines (retrain, warm-start AdamW, no-op)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from recsys.data.interactions import Interactions


@dataclass(frozen=True)
class UnlearnTask:
    """What has to be forgotten.

    ``remaining`` is the training data after the deletion (what a retrain would see);
    ``deleted`` holds every removed training row (single pairs and all rows of deleted
    users); ``deleted_users`` are the dense ids of users deleted as a whole.
    """

    remaining: Interactions
    deleted: Interactions
    deleted_users: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    @staticmethod
    def build(
        train: Interactions,
        deleted_pairs: Interactions | None = None,
        deleted_users: torch.Tensor | None = None,
    ) -> UnlearnTask:
        """Split ``train`` into remaining and deleted rows for the given pairs and users."""
        gone = torch.zeros(len(train), dtype=torch.bool)
        if deleted_pairs is not None and len(deleted_pairs) > 0:
            gone |= torch.isin(train.pair_keys(), deleted_pairs.pair_keys())
        users = (
            torch.empty(0, dtype=torch.int64)
            if deleted_users is None
            else torch.unique(deleted_users.to(torch.int64))
        )
        if users.numel() > 0:
            gone |= torch.isin(train.user, users)
        return UnlearnTask(
            remaining=train.subset(~gone), deleted=train.subset(gone), deleted_users=users
        )

    def affected_users(self) -> torch.Tensor:
        return torch.unique(self.deleted.user)

    def affected_items(self) -> torch.Tensor:
        return torch.unique(self.deleted.item)


@dataclass
class Snapshot:
    """One point on a method's cost/quality curve.

    ``seconds`` counts only the method's own compute up to this point: time the consumer
    spends between snapshots (evaluating metrics) is excluded. ``model`` is the live model;
    a consumer that keeps it must copy it.
    """

    budget: int  # rounds (AltEraser), steps (AdamW) or epochs (retrain) done so far
    seconds: float
    model: nn.Module
    info: dict[str, float] = field(default_factory=dict)
