"""How far the deleted items fell: their ranks in each affected user's scores, before and after.

A deleted item's rank is its 1-based position in the user's full score list (every item
competes; ties count against it, so a constant model does not hide an item). Exposure is
the share of deleted pairs whose item is in the user's top ``k``. Whole-user deletions are
left out: such a user has no row left to rank with.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys.data.interactions import Interactions
from recsys.metrics import rank_counts

TOP_K = 20


def _ranks(model: nn.Module, pairs: Interactions) -> np.ndarray:
    nothing = Interactions.from_pairs(
        torch.empty(0, dtype=torch.int64),
        torch.empty(0, dtype=torch.int64),
        pairs.n_users,
        pairs.n_items,
    )
    above, ties, _ = rank_counts(model, nothing, pairs.user, pairs.item)
    return (above + ties + 1).numpy()  # rank = 1 + competitors scored >= the item


def _summary(ranks: np.ndarray, k: int) -> dict[str, float | None]:
    if ranks.size == 0:
        return {"mean_rank": None, "median_rank": None, "exposure": None}
    return {
        "mean_rank": float(ranks.mean()),
        "median_rank": float(np.median(ranks)),
        "exposure": float((ranks <= k).mean()),
    }


def _finite(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else x


def deletion_ranks(
    before: nn.Module,
    after: nn.Module,
    deleted: Interactions,
    deleted_users: torch.Tensor,
    *,
    k: int = TOP_K,
) -> dict[str, Any]:
    """Mean/median rank and top-``k`` exposure of the deleted pairs under both models."""
    keep = ~torch.isin(deleted.user, deleted_users.to(torch.int64))
    pairs = deleted.subset(keep)
    b, a = _summary(_ranks(before, pairs), k), _summary(_ranks(after, pairs), k)
    out: dict[str, Any] = {"k": k, "pairs": len(pairs), "n_items": deleted.n_items}
    out["users"] = int(torch.unique(pairs.user).numel())
    for name, summary in (("before", b), ("after", a)):
        for key, value in summary.items():
            out[f"{key}_{name}"] = _finite(value)
    return out
