"""Deletion scenarios of the benchmark, each a deterministic function of (training data, seed).

- R: 1% of the training interactions, uniformly at random.
- U: every interaction of 1% of the users (at least 5): user-level erasure. Each deleted
  user's history is also split in two halves: one to fold the user in again after
  unlearning, the other whose exposure is then measured.
- S: single requests (one user, 1-3 of their items), processed one after another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from recsys.data.interactions import Interactions
from recsys.unlearn.api import UnlearnTask

SCENARIOS = ("R", "U", "S")
# Mixed into the seed so that scenarios drawn with one seed are independent of each other.
_STREAM = {"R": 101, "U": 202, "S": 303}


@dataclass(frozen=True)
class Scenario:
    name: str
    task: UnlearnTask  # every deletion of the scenario at once (S: all requests together)
    # S: one Interactions per request, in processing order; R/U: the single batch
    requests: list[Interactions] = field(default_factory=list)
    fold_in: Interactions | None = (
        None  # U: the half of each deleted user's history used to fold in
    )
    probe: Interactions | None = None  # U: the other half, whose exposure is measured


def _generator(name: str, seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1000 + _STREAM[name])


def deleted_pairs_random(train: Interactions, seed: int, frac: float = 0.01) -> Interactions:
    """R: round(frac * N) training rows (at least 1), uniformly without replacement."""
    n = max(1, round(frac * len(train)))
    idx = torch.randperm(len(train), generator=_generator("R", seed))[:n]
    return train.subset(torch.sort(idx).values)


def deleted_users_random(
    train: Interactions, seed: int, frac: float = 0.01, min_users: int = 5
) -> torch.Tensor:
    """U: dense ids (sorted) of max(min_users, round(frac * active users)) users with >= 2 rows.

    Two rows at least, so that both halves of the fold-in split are non-empty.
    """
    counts = train.user_counts()
    eligible = torch.nonzero(counts >= 2).flatten()
    n_active = int((counts > 0).sum())
    n = min(eligible.numel(), max(min_users, round(frac * n_active)))
    pick = torch.randperm(eligible.numel(), generator=_generator("U", seed))[:n]
    return torch.sort(eligible[pick]).values


def split_halves(rows: Interactions, seed: int) -> tuple[Interactions, Interactions]:
    """Per user, a random floor(n/2) of their rows (the fold-in half) and the rest (probe)."""
    gen = _generator("U", seed + 1)
    key = torch.rand(len(rows), generator=gen)
    # order rows by (user, random key); each user's first half goes to fold-in
    order = torch.argsort(rows.user.double() * 2.0 + key)
    user = rows.user[order]
    counts = torch.bincount(user, minlength=rows.n_users)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(len(rows)) - starts[user]  # position inside the user's block
    first = pos < counts[user] // 2
    return rows.subset(order[first]), rows.subset(order[~first])


def single_requests(
    train: Interactions, seed: int, n_requests: int, max_items: int = 3
) -> list[Interactions]:
    """S: n_requests requests of distinct users, each 1..max_items of the user's own items.

    Users are drawn among those with more than max_items + 1 rows, so that each keeps
    training data (and FE stays defined) after their request.
    """
    gen = _generator("S", seed)
    counts = train.user_counts()
    eligible = torch.nonzero(counts > max_items + 1).flatten()
    users = eligible[torch.randperm(eligible.numel(), generator=gen)[:n_requests]]
    order = torch.argsort(train.user, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    requests = []
    for u in users.tolist():
        rows = order[int(starts[u]) : int(starts[u] + counts[u])]
        n_items = int(torch.randint(1, max_items + 1, (1,), generator=gen))
        pick = rows[torch.randperm(rows.numel(), generator=gen)[:n_items]]
        requests.append(train.subset(torch.sort(pick).values))
    return requests


def subsample(inter: Interactions, max_users: int, min_item_count: int, seed: int) -> Interactions:
    """A smaller problem for ``--quick``: max_users random users, the items that at least
    min_item_count of their rows share; ids compacted (so costs shrink with the sizes).
    """
    counts = inter.user_counts()
    active = torch.nonzero(counts > 0).flatten()
    gen = torch.Generator().manual_seed(seed)
    users = torch.sort(active[torch.randperm(active.numel(), generator=gen)[:max_users]]).values
    rows = inter.subset(torch.isin(inter.user, users))
    items = torch.nonzero(rows.item_counts() >= min_item_count).flatten()
    rows = rows.subset(torch.isin(rows.item, items))
    users = torch.unique(rows.user)
    # dense ids in the order of the original ones
    user_map = torch.full((inter.n_users,), -1, dtype=torch.int64)
    user_map[users] = torch.arange(users.numel())
    item_map = torch.full((inter.n_items,), -1, dtype=torch.int64)
    item_map[items] = torch.arange(items.numel())
    return Interactions(
        user_map[rows.user], item_map[rows.item], rows.value, rows.ts, users.numel(), items.numel()
    )


def _concat(parts: list[Interactions], like: Interactions) -> Interactions:
    return Interactions(
        torch.cat([like.user[:0], *(p.user for p in parts)]),
        torch.cat([like.item[:0], *(p.item for p in parts)]),
        torch.cat([like.value[:0], *(p.value for p in parts)]),
        torch.cat([like.ts[:0], *(p.ts for p in parts)]),
        like.n_users,
        like.n_items,
    )


def mixed_batch(
    train: Interactions, seed: int, n_requests: int = 1000, user_share: float = 0.1
) -> UnlearnTask:
    """One batch of n_requests: a user_share of whole-user deletions, the rest 1-3 pairs each.

    Whole users are drawn among users without a pair request, so the counts are exact
    whenever the data has enough users.
    """
    n_users = round(n_requests * user_share)
    pair_requests = single_requests(train, seed, n_requests - n_users)
    taken = torch.cat([train.user[:0], *(r.user[:1] for r in pair_requests)])
    counts = train.user_counts()
    counts[taken] = 0  # never pick a user twice
    eligible = torch.nonzero(counts > 0).flatten()
    gen = _generator("U", seed + 2)
    users = eligible[torch.randperm(eligible.numel(), generator=gen)[:n_users]]
    return UnlearnTask.build(train, _concat(pair_requests, train), torch.sort(users).values)


def build_scenario(name: str, train: Interactions, seed: int, *, n_requests: int = 10) -> Scenario:
    """The scenario ``name`` (R, U or S) on ``train``; identical for identical (train, seed)."""
    if name == "R":
        pairs = deleted_pairs_random(train, seed)
        task = UnlearnTask.build(train, deleted_pairs=pairs)
        return Scenario(name, task, requests=[task.deleted])
    if name == "U":
        users = deleted_users_random(train, seed)
        task = UnlearnTask.build(train, deleted_users=users)
        fold_in, probe = split_halves(task.deleted, seed)
        return Scenario(name, task, requests=[task.deleted], fold_in=fold_in, probe=probe)
    if name == "S":
        requests = single_requests(train, seed, n_requests)
        if not requests:
            raise ValueError("scenario S: no user has enough training rows for a request")
        task = UnlearnTask.build(train, deleted_pairs=_concat(requests, train))
        return Scenario(name, task, requests=requests)
    raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}")
