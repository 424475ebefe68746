"""Synthetic implicit feedback with power-law user activity and item popularity, at scale."""

from __future__ import annotations

import numpy as np
import torch

from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.data.loaders import Dataset

TS_START = 1_000_000_000  # 2001-09-09, an arbitrary but fixed epoch for the event stream
MAX_ROUNDS = 12
# a user whose count exceeds n_items / EXACT_RATIO is sampled exactly (cost n_items per user)
# instead of by rejection, which needs many redraws once the user owns most of the popular items
EXACT_RATIO = 8
EXACT_CHUNK = 4_000_000  # cells of the (users x items) noise block built per step


def _allocate(total: int, w: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``total`` units over users proportionally to ``w``, none getting more than ``cap``."""
    alloc = np.zeros(len(w), dtype=np.int64)
    remaining = total
    while remaining > 0:
        p = np.where(alloc < cap, w, 0.0)
        p = p / p.sum()
        add = np.floor(remaining * p * (1 - 1e-12)).astype(np.int64)
        left = remaining - int(add.sum())
        if left:
            # the units lost to flooring go to `left` distinct users drawn by weight (Gumbel top-k)
            with np.errstate(divide="ignore"):
                g = np.log(p) + rng.gumbel(size=len(p))
            add[np.argpartition(-g, left - 1)[:left]] += 1
        alloc += add
        over = np.maximum(alloc - cap, 0)
        alloc -= over
        remaining = int(over.sum())
    return alloc


def _exact(
    users: np.ndarray,
    k: np.ndarray,
    log_w: np.ndarray,
    rng: np.random.Generator,
    taken: np.ndarray,
) -> np.ndarray:
    """Pair keys: ``k[j]`` items for ``users[j]`` drawn by weight without replacement.

    Uses the Gumbel top-k trick; ``taken`` (sorted pair keys) are excluded.
    """
    n_items = len(log_w)
    out = []
    step = max(1, EXACT_CHUNK // n_items)
    for s in range(0, len(users), step):
        u, kk = users[s : s + step], k[s : s + step]
        g = log_w[None, :] + rng.gumbel(size=(len(u), n_items))
        if taken.size:
            lo = np.searchsorted(taken, u * n_items)
            hi = np.searchsorted(taken, (u + 1) * n_items)
            cnt = hi - lo
            rows = np.repeat(np.arange(len(u)), cnt)
            pos = np.arange(rows.size) + np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
            g[rows, taken[pos] % n_items] = -np.inf
        order = np.argsort(-g, axis=1)
        items = order[np.arange(n_items)[None, :] < kk[:, None]]
        out.append(np.repeat(u, kk) * n_items + items)
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def _taken_prefix(acc: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """Per user, how many of the most popular items (ranks 0, 1, ...) it already holds in a row."""
    if acc.size == 0:
        return np.zeros(n_users, dtype=np.int64)
    user = acc // n_items
    start = np.searchsorted(user, np.arange(n_users))
    # ranks within a user's group strictly increase, so rank == position holds exactly on a prefix
    in_prefix = acc % n_items == np.arange(acc.size) - start[user]
    return np.bincount(user[in_prefix], minlength=n_users)


def _rejection(
    deficit: np.ndarray, cdf: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct (user, rank) keys drawn by weight with redraws; returns (keys, unmet).

    Items are popularity ranks here. Redraws skip each user's fully taken run of top
    ranks, which keeps the acceptance rate high even for steep popularity curves.
    """
    n_users, n_items = len(deficit), len(cdf)
    deficit = deficit.copy()
    # per-user share of draws that were new, sizing the next round; the floor keeps a round's
    # draws within 2.4x the deficit, since acceptance rises once the taken prefix is skipped
    rate = np.ones(n_users)
    acc = np.empty(0, dtype=np.int64)
    cdf0 = np.concatenate([[0.0], cdf])
    for r in range(MAX_ROUNDS):
        act = np.flatnonzero(deficit > 0)
        if act.size == 0:
            break
        draws = np.ceil(deficit[act] / rate[act] * (1.0 if r == 0 else 1.2)).astype(np.int64)
        lo = cdf0[_taken_prefix(acc, n_users, n_items)[act]]
        cand_u = np.repeat(act, draws)
        lo_c = np.repeat(lo, draws)
        u01 = rng.random(cand_u.size)
        cand_i = np.searchsorted(cdf, lo_c + u01 * (cdf[-1] - lo_c), side="right")
        keys = cand_u * n_items + np.minimum(cand_i, n_items - 1)
        if acc.size:
            pos = np.minimum(np.searchsorted(acc, keys), acc.size - 1)
            keys = keys[acc[pos] != keys]
        # first occurrence follows draw order, which is random within a user: a fair priority
        uniq, first = np.unique(keys, return_index=True)
        ku = uniq // n_items
        got = np.bincount(ku, minlength=n_users)
        if np.any(got > deficit):
            order = np.argsort(first, kind="stable")  # grouped by user, random within
            su = ku[order]
            rank = np.arange(su.size) - np.searchsorted(su, su, side="left")
            uniq = np.sort(uniq[order[rank < deficit[su]]])
            got = np.bincount(uniq // n_items, minlength=n_users)
        acc = np.insert(acc, np.searchsorted(acc, uniq), uniq)
        rate[act] = np.clip(got[act] / draws, 0.5, 1.0)
        deficit -= got
    return acc, deficit


def synthetic_interactions(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    seed: int,
    user_exponent: float = 1.0,
    item_exponent: float = 1.0,
    min_per_user: int = 5,
) -> Interactions:
    """Unique (user, item) pairs with Zipf-like activity and popularity; deterministic per seed.

    User u's activity weight is (rank_u + 1) ** -user_exponent with ranks a random
    permutation of the users (likewise for items), so ids carry no popularity signal.
    Every user gets ``min_per_user`` interactions plus a share of the rest proportional
    to its weight, capped at half the catalogue; each user's items are drawn by
    popularity without replacement. Rows are in time order: ``ts`` strictly increases.
    Memory is O(n_interactions + n_users + n_items); no users x items matrix is built.
    """
    cap = max(min_per_user, n_items // 2)
    if n_users <= 0 or n_items <= 0 or min_per_user < 0:
        raise ValueError("n_users and n_items must be positive and min_per_user >= 0")
    if min_per_user > n_items:
        raise ValueError(f"min_per_user={min_per_user} exceeds n_items={n_items}")
    if not n_users * min_per_user <= n_interactions <= n_users * cap:
        raise ValueError(
            f"n_interactions={n_interactions} must lie in [n_users*min_per_user, n_users*{cap}]"
            f" = [{n_users * min_per_user}, {n_users * cap}] (per-user cap: half the items)"
        )
    rng = np.random.default_rng(seed)
    user_w = (rng.permutation(n_users) + 1.0) ** -user_exponent
    item_of_rank = rng.permutation(n_items)
    extra = n_interactions - n_users * min_per_user
    counts = min_per_user + _allocate(extra, user_w, cap - min_per_user, rng)

    # sampling works on popularity ranks (0 = most popular); ranks become item ids at the end
    log_w = -item_exponent * np.log(np.arange(n_items) + 1.0)
    exact = counts * EXACT_RATIO > n_items
    acc, unmet = _rejection(np.where(exact, 0, counts), np.cumsum(np.exp(log_w)), rng)
    # users still short after MAX_ROUNDS (tiny catalogues, steep popularity) finish exactly
    short = np.flatnonzero(unmet > 0)
    tail = _exact(short, unmet[short], log_w, rng, acc)
    heavy = np.flatnonzero(exact)
    none = np.empty(0, dtype=np.int64)
    keys = np.concatenate([acc, tail, _exact(heavy, counts[heavy], log_w, rng, none)])
    assert keys.size == n_interactions
    keys = keys[rng.permutation(keys.size)]
    ts = TS_START + np.cumsum(rng.integers(1, 61, size=keys.size))
    return Interactions.from_pairs(
        torch.from_numpy(keys // n_items),
        torch.from_numpy(item_of_rank[keys % n_items]),
        n_users,
        n_items,
        ts=torch.from_numpy(ts),
    )


def synthetic_dataset(
    n_users: int,
    n_items: int,
    n_interactions: int,
    *,
    seed: int,
    user_exponent: float = 1.0,
    item_exponent: float = 1.0,
    min_per_user: int = 5,
) -> Dataset:
    """``synthetic_interactions`` wrapped with identity id maps ("0".."n-1")."""
    inter = synthetic_interactions(
        n_users,
        n_items,
        n_interactions,
        seed=seed,
        user_exponent=user_exponent,
        item_exponent=item_exponent,
        min_per_user=min_per_user,
    )
    source = (
        f"synthetic(n_users={n_users}, n_items={n_items}, n_interactions={n_interactions}, "
        f"seed={seed}, user_exponent={user_exponent}, item_exponent={item_exponent}, "
        f"min_per_user={min_per_user})"
    )
    return Dataset(inter, IdMap.range(n_users), IdMap.range(n_items), source)
