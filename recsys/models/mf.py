"""Matrix factorisation: score(u, i) = x_u . y_i. The module only defines the model."""

from __future__ import annotations

import torch
from torch import nn


class MF(nn.Module):
    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        init_std: float = 0.1,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.dim = dim
        self.user_emb = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item_emb = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)

    def score(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        return (self.user_emb[user] * self.item_emb[item]).sum(-1)  # (N,)

    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_emb[users] @ self.item_emb.T  # (B, n_items)
