import torch

from recsys.data.interactions import Interactions
from recsys.data.split import leave_latest_out
from recsys.data.synthetic import synthetic_interactions


def _inter(rows: list[tuple[int, int, int]], n_users: int = 3, n_items: int = 10) -> Interactions:
    u, i, t = (torch.tensor(c) for c in zip(*rows, strict=True))
    return Interactions.from_pairs(u, i, n_users, n_items, ts=t)


def _triples(x: Interactions) -> list[tuple[int, int, int]]:
    return list(zip(x.user.tolist(), x.item.tolist(), x.ts.tolist(), strict=True))


def test_latest_is_test_second_latest_is_valid() -> None:
    rows = [(0, 1, 5), (0, 2, 1), (0, 3, 3), (0, 4, 4), (1, 1, 9), (1, 2, 8)]
    s = leave_latest_out(_inter(rows))
    assert _triples(s.test) == [(0, 1, 5)]
    assert _triples(s.valid) == [(0, 4, 4)]
    # user 1 has only two rows: all of them stay in train
    assert _triples(s.train) == [(0, 2, 1), (0, 3, 3), (1, 1, 9), (1, 2, 8)]


def test_equal_timestamps_break_by_item_then_row() -> None:
    s = leave_latest_out(_inter([(2, 7, 1), (2, 3, 1), (2, 9, 1), (2, 5, 0)]))
    assert _triples(s.test) == [(2, 9, 1)]
    assert _triples(s.valid) == [(2, 7, 1)]


def test_properties_on_synthetic_data() -> None:
    data = synthetic_interactions(300, 200, 900, seed=3, min_per_user=1)
    s = leave_latest_out(data)
    counts = data.user_counts()
    eligible = int((counts >= 3).sum())
    assert 0 < eligible < data.n_users  # the data has users both above and below 3 rows
    assert len(s.test) == len(s.valid) == eligible
    assert len(s.train) + len(s.valid) + len(s.test) == len(data)
    # disjoint and complete: the three parts' pairs are exactly the input's
    keys = torch.cat([s.train.pair_keys(), s.valid.pair_keys(), s.test.pair_keys()])
    assert torch.equal(torch.sort(keys).values, torch.sort(data.pair_keys()).values)
    # test holds each eligible user's newest row, valid the next newest
    newest = torch.full((data.n_users,), -1).scatter_reduce(0, data.user, data.ts, "amax")
    assert torch.equal(s.test.ts, newest[s.test.user])
    test_ts = torch.full((data.n_users,), -1)
    test_ts[s.test.user] = s.test.ts
    assert bool((s.valid.ts < test_ts[s.valid.user]).all())
    train_newest = torch.full((data.n_users,), -1)
    train_newest = train_newest.scatter_reduce(0, s.train.user, s.train.ts, "amax")
    assert bool((train_newest[s.valid.user] < s.valid.ts).all())
    for part in (s.train, s.valid, s.test):
        assert (part.n_users, part.n_items) == (data.n_users, data.n_items)


def test_deterministic_and_independent_of_row_order() -> None:
    data = synthetic_interactions(100, 80, 1500, seed=1)
    a = leave_latest_out(data)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    b = leave_latest_out(data.subset(perm))
    for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)):
        assert x.digest() == y.digest()
    assert torch.equal(leave_latest_out(data).test.user, a.test.user)


def test_empty_input() -> None:
    empty = Interactions.from_pairs(torch.empty(0), torch.empty(0), 4, 4)
    s = leave_latest_out(empty)
    assert len(s.train) == len(s.valid) == len(s.test) == 0
