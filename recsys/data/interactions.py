"""The in-memory interaction table every part of the ML core works on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Interactions:
    """Implicit-feedback interactions with dense ids.

    All tensors have shape (N,). ``user`` and ``item`` are dense ids in
    ``[0, n_users)`` and ``[0, n_items)``; ``value`` is the raw value (rating), 1.0
    when the source had none; ``ts`` is a unix timestamp, 0 when the source had none.
    ``n_users``/``n_items`` are the sizes of the id spaces, which outlive deletions:
    a deleted user keeps its dense id (its row simply has no interactions).
    """

    user: torch.Tensor  # (N,) int64
    item: torch.Tensor  # (N,) int64
    value: torch.Tensor  # (N,) float32
    ts: torch.Tensor  # (N,) int64
    n_users: int
    n_items: int

    @staticmethod
    def from_pairs(
        user: torch.Tensor,
        item: torch.Tensor,
        n_users: int,
        n_items: int,
        value: torch.Tensor | None = None,
        ts: torch.Tensor | None = None,
    ) -> Interactions:
        user = user.to(torch.int64)
        item = item.to(torch.int64)
        n = user.numel()
        return Interactions(
            user=user,
            item=item,
            value=torch.ones(n) if value is None else value.to(torch.float32),
            ts=torch.zeros(n, dtype=torch.int64) if ts is None else ts.to(torch.int64),
            n_users=n_users,
            n_items=n_items,
        )

    def __len__(self) -> int:
        return int(self.user.numel())

    def subset(self, index: torch.Tensor) -> Interactions:
        """Rows selected by a boolean mask or an index tensor; id spaces unchanged."""
        return Interactions(
            self.user[index],
            self.item[index],
            self.value[index],
            self.ts[index],
            self.n_users,
            self.n_items,
        )

    def pair_keys(self) -> torch.Tensor:
        """One int64 key per row, ``user * n_items + item``: used to match pairs."""
        return self.user * self.n_items + self.item

    def without_pairs(self, deleted: Interactions) -> Interactions:
        """These interactions minus every (user, item) pair present in ``deleted``."""
        gone = torch.isin(self.pair_keys(), deleted.pair_keys())
        return self.subset(~gone)

    def without_users(self, users: torch.Tensor) -> Interactions:
        """These interactions minus every row of the given dense user ids."""
        return self.subset(~torch.isin(self.user, users.to(torch.int64)))

    def user_counts(self) -> torch.Tensor:
        return torch.bincount(self.user, minlength=self.n_users)

    def item_counts(self) -> torch.Tensor:
        return torch.bincount(self.item, minlength=self.n_items)

    def digest(self) -> str:
        """sha256 of the (user, item) pair set, independent of row order."""
        keys = torch.sort(self.pair_keys()).values.contiguous()
        h = hashlib.sha256()
        h.update(f"{self.n_users}x{self.n_items}:".encode())
        h.update(keys.numpy().tobytes())
        return h.hexdigest()
