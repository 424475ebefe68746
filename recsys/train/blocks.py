"""The contract between a model's training objective and the block-wise solvers.

Both the trainer (from a random init) and AltEraser (from the served model) minimise an
objective by alternating blocks: all user rows, all item rows, then the shared network
weights. Inside a block every row is an independent small problem, so an objective only
has to say how to take one (damped, line-searched) Newton step on a set of rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn


@dataclass
class BlockStats:
    """What one block step did."""

    rows: int  # rows solved
    loss_before: float  # objective restricted to those rows, before the step
    loss_after: float  # ... and after
    backtracks: int = 0  # total line-search halvings over all rows


class BlockObjective(Protocol):
    """A deterministic objective of (training data, seed) plus L2, solvable block-wise."""

    def loss(self, model: nn.Module) -> torch.Tensor:
        """The full objective (including L2) as a differentiable scalar tensor."""
        ...

    def solve_users(self, model: nn.Module, users: torch.Tensor) -> BlockStats:
        """One damped Newton step (exact minimiser for MF) on the given user rows, in place."""
        ...

    def solve_items(self, model: nn.Module, items: torch.Tensor) -> BlockStats:
        """The same for item rows, user side and network held fixed."""
        ...

    def solve_network(self, model: nn.Module) -> BlockStats | None:
        """The same for the shared network weights; ``None`` when the model has none (MF)."""
        ...

    def row_grad_norms(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row gradient norms of the objective: ((n_users,), (n_items,))."""
        ...

    def row_curvatures(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row mean Hessian eigenvalue tr(H_r) / dim_r (Gauss-Newton is fine), > 0.

        ||grad_r|| / curvature_r estimates the length of row r's Newton step: AltEraser's
        convergence test re-solves a row only when that step would move it noticeably.
        """
        ...
