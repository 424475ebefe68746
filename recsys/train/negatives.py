"""Deterministic negative sampling: the negatives are a pure function of (data, seed).

Positive (u, i) gets ``ratio`` negatives; the k-th is the first of the candidates
j_a = hash(seed, u, i, k, a) mod n_items (a = 0, 1, ...) that is not one of u's positives.
It depends only on (seed, u, i, k) and u's positive set, so deleting some positives removes
exactly their own negatives: the other positives keep theirs, except where an earlier
candidate hit a now-deleted item of the same user (then that item becomes the negative).
A retrain on the remaining data therefore sees (almost exactly) the original negatives.
"""

from __future__ import annotations

import torch

from recsys.data.interactions import Interactions

MAX_RETRIES = 32  # candidates tried per negative before it is dropped (user owns ~all items)


def _signed(c: int) -> int:
    """An unsigned 64-bit constant as the int64 with the same bits."""
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _shr(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch's >> is arithmetic on signed ints)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser, in wrapping int64 arithmetic (same bits as uint64)."""
    x = (x ^ _shr(x, 30)) * _M1
    x = (x ^ _shr(x, 27)) * _M2
    return x ^ _shr(x, 31)


def _absorb(h: torch.Tensor, v: torch.Tensor | int) -> torch.Tensor:
    if isinstance(v, int):  # wrap Python ints to int64 bits before they meet a tensor
        return _mix(h + _signed(((v + 1) * _GOLDEN) & ((1 << 64) - 1)))
    return _mix(h + (v + 1) * _GOLDEN)  # splitmix64 step: advance the state by golden * (v + 1)


def hash64(seed: int, *parts: torch.Tensor | int) -> torch.Tensor:
    """A 64-bit hash (as int64 bits) of (seed, *parts), broadcast over the tensor parts."""
    h = _mix(torch.tensor(_signed(seed & ((1 << 64) - 1)), dtype=torch.int64) + _GOLDEN)
    for v in parts:
        h = _absorb(h, v)
    return h


def negative_items(
    user: torch.Tensor,
    item: torch.Tensor,
    n_items: int,
    positive_keys: torch.Tensor,
    ratio: int,
    seed: int,
) -> torch.Tensor:
    """The negatives of each positive (user[n], item[n]) as an (N, ratio) int64 table.

    ``positive_keys`` are the sorted unique keys user * n_items + item of all positives;
    an entry is -1 when MAX_RETRIES candidates were all positives of that user.
    """
    device = user.device
    k = torch.arange(ratio, device=device)
    base = hash64(seed, user[:, None], item[:, None], k[None, :]).reshape(-1)  # (N * ratio,)
    owner = user[:, None].expand(-1, ratio).reshape(-1)  # (N * ratio,)
    neg = torch.full_like(base, -1)
    pending = torch.arange(base.numel(), device=device)  # entries still without a negative
    for attempt in range(MAX_RETRIES):
        if pending.numel() == 0:
            break
        cand = _shr(_absorb(base[pending], attempt), 1) % n_items  # (P,) in [0, n_items)
        key = owner[pending] * n_items + cand  # (P,)
        at = torch.searchsorted(positive_keys, key).clamp_max(max(positive_keys.numel() - 1, 0))
        hit = (
            positive_keys[at] == key if positive_keys.numel() else torch.zeros_like(key).bool()
        )  # (P,) candidate is one of the user's positives: try the next one
        neg[pending[~hit]] = cand[~hit]
        pending = pending[hit]
    return neg.view(-1, ratio)  # (N, ratio)


def negative_pairs(data: Interactions, ratio: int, seed: int) -> Interactions:
    """The deterministic negative set of ``data``: ``ratio`` per positive, value 0."""
    if ratio <= 0 or len(data) == 0:
        return data.subset(torch.zeros(len(data), dtype=torch.bool))
    keys = torch.unique(data.pair_keys())  # (K,) sorted
    neg = negative_items(data.user, data.item, data.n_items, keys, ratio, seed)  # (N, ratio)
    user = data.user[:, None].expand(-1, ratio)  # (N, ratio)
    keep = neg >= 0
    return Interactions.from_pairs(
        user[keep],
        neg[keep],
        data.n_users,
        data.n_items,
        value=torch.zeros(int(keep.sum())),
    )
