"""Leave-latest-out split: each user's newest interaction is test, the one before validation."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recsys.data.interactions import Interactions

MIN_INTERACTIONS = 3  # a user needs one train, one valid and one test row to be split
_LOWEST = torch.iinfo(torch.int64).min


@dataclass
class Split:
    """Three disjoint row sets over the same id spaces."""

    train: Interactions
    valid: Interactions
    test: Interactions


def _latest(inter: Interactions, candidate: torch.Tensor) -> torch.Tensor:
    """Mask of each user's latest candidate row by (ts, item, row position)."""
    rows = torch.arange(len(inter))
    # a per-user lexicographic max, key by key: O(N) scatters instead of an O(N log N) sort
    for key in (inter.ts, inter.item, rows):
        k = torch.where(candidate, key, _LOWEST)
        best = torch.full((inter.n_users,), _LOWEST).scatter_reduce(0, inter.user, k, "amax")
        candidate = candidate & (k == best[inter.user])
    return candidate


def leave_latest_out(inter: Interactions) -> Split:
    """Per user: latest row -> test, second latest -> valid, the rest -> train.

    "Latest" orders a user's rows by (ts, item id, row position), so equal timestamps
    are broken deterministically: the larger item id, then the later row, counts as
    newer. Users with fewer than ``MIN_INTERACTIONS`` rows keep all of them in train
    (they are absent from valid and test). Each part keeps the input's row order.
    """
    eligible = (inter.user_counts() >= MIN_INTERACTIONS)[inter.user]
    test = _latest(inter, eligible)
    valid = _latest(inter, eligible & ~test)
    return Split(
        train=inter.subset(~(test | valid)),
        valid=inter.subset(valid),
        test=inter.subset(test),
    )
