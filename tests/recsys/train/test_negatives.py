"""Deterministic negatives: the hash, never-a-positive, and deletion locality."""

from __future__ import annotations

import torch

from recsys.data.interactions import Interactions
from recsys.train.negatives import hash64, negative_items, negative_pairs

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix_py(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def _hash_py(seed: int, *parts: int) -> int:
    h = _mix_py((seed + GOLDEN) & MASK)
    for v in parts:
        h = _mix_py((h + (v + 1) * GOLDEN) & MASK)
    return h


def _data(seed: int = 0, n_users: int = 30, n_items: int = 40, n: int = 400) -> Interactions:
    g = torch.Generator().manual_seed(seed)
    keys = torch.unique(torch.randint(0, n_users * n_items, (n,), generator=g))
    return Interactions.from_pairs(keys // n_items, keys % n_items, n_users, n_items)


def test_hash_is_splitmix64_in_wrapping_int64() -> None:
    u = torch.tensor([0, 1, 7, 123456789, 2**40 + 3])
    i = torch.tensor([5, 0, 7, 987654321, 11])
    got = hash64(42, u, i, 3)
    for k in range(u.numel()):
        expected = _hash_py(42, int(u[k]), int(i[k]), 3)
        assert int(got[k]) & MASK == expected


def test_negatives_are_deterministic_and_never_positive() -> None:
    data = _data()
    a, b = negative_pairs(data, 4, seed=3), negative_pairs(data, 4, seed=3)
    assert torch.equal(a.user, b.user) and torch.equal(a.item, b.item)
    assert len(a) == 4 * len(data)
    assert not torch.isin(a.pair_keys(), data.pair_keys()).any()
    assert int(a.item.min()) >= 0 and int(a.item.max()) < data.n_items
    assert float(a.value.abs().sum()) == 0.0
    other = negative_pairs(data, 4, seed=4)
    assert not torch.equal(a.item, other.item)


def test_deleting_positives_removes_exactly_their_negatives() -> None:
    data = _data(n_items=200, n=600)  # ~10% dense
    keys = torch.unique(data.pair_keys())
    full = negative_items(data.user, data.item, data.n_items, keys, 3, seed=9)  # (N, 3)
    keep = torch.rand(len(data), generator=torch.Generator().manual_seed(1)) > 0.3
    rem = data.subset(keep)
    deleted = data.subset(~keep)
    rem_keys = torch.unique(rem.pair_keys())
    after = negative_items(rem.user, rem.item, rem.n_items, rem_keys, 3, seed=9)  # (N', 3)
    before = full[keep]
    changed = before != after  # (N', 3)
    # a remaining positive's negative only changes when an earlier candidate hit a deleted
    # item of the same user: that deleted item is then its new negative
    owner = rem.user[:, None].expand(-1, 3)
    assert torch.isin(owner[changed] * data.n_items + after[changed], deleted.pair_keys()).all()
    assert changed.float().mean() < 0.08  # ~ density x deleted share
    assert changed.any()  # the dataset is dense enough for the exception to occur


def test_deleted_user_loses_all_negatives() -> None:
    data = _data()
    rem = data.without_users(torch.tensor([3]))
    neg = negative_pairs(rem, 2, seed=0)
    assert not (neg.user == 3).any()
    assert len(neg) == 2 * len(rem)


def test_user_owning_every_item_gets_no_negatives() -> None:
    user = torch.tensor([0, 0, 0, 1])
    item = torch.tensor([0, 1, 2, 0])
    neg = negative_pairs(Interactions.from_pairs(user, item, 2, 3), 2, seed=0)
    assert (neg.user == 1).all() and len(neg) == 2  # user 0 has nothing left to sample
    assert not torch.isin(neg.item, torch.tensor([0])).any()
