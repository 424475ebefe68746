"""What every recommendation model in the core offers to trainers, unlearning and metrics."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Recommender(Protocol):
    n_users: int
    n_items: int

    def score(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        """Scores (logits for NeuMF) of the given pairs: (N,) -> (N,)."""
        ...

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each given user: (B,) -> (B, n_items)."""
        ...
