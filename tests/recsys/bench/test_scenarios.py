"""Deletion scenarios: deterministic per seed, with the sizes the evaluation specifies."""

from __future__ import annotations

import torch

from recsys.bench.scenarios import build_scenario, mixed_batch
from recsys.data.interactions import Interactions


def _train(n_users: int = 120, n_items: int = 60, per_user: int = 12) -> Interactions:
    gen = torch.Generator().manual_seed(7)
    items = torch.stack([torch.randperm(n_items, generator=gen)[:per_user] for _ in range(n_users)])
    users = torch.arange(n_users).repeat_interleave(per_user)
    return Interactions.from_pairs(users, items.flatten(), n_users, n_items)


def test_scenarios_are_deterministic_per_seed() -> None:
    train = _train()
    for name in ("R", "U", "S"):
        a, b = build_scenario(name, train, 3), build_scenario(name, train, 3)
        c = build_scenario(name, train, 4)
        assert a.task.deleted.digest() == b.task.deleted.digest()
        assert a.task.deleted.digest() != c.task.deleted.digest()


def test_scenario_r_deletes_one_percent_of_rows() -> None:
    train = _train()
    sc = build_scenario("R", train, 0)
    assert len(sc.task.deleted) == round(0.01 * len(train))
    assert len(sc.task.remaining) + len(sc.task.deleted) == len(train)
    assert sc.task.deleted_users.numel() == 0


def test_scenario_u_deletes_whole_users_and_splits_their_history() -> None:
    train = _train(n_users=120)
    sc = build_scenario("U", train, 0)
    users = sc.task.deleted_users
    assert users.numel() == 5  # 1% of 120 users is 1: at least 5
    assert not torch.isin(sc.task.remaining.user, users).any()
    assert len(sc.task.deleted) == 5 * 12
    assert sc.fold_in is not None and sc.probe is not None
    # the halves partition the deleted rows, floor(12 / 2) = 6 rows per user fold back in
    assert len(sc.fold_in) + len(sc.probe) == len(sc.task.deleted)
    assert not torch.isin(sc.fold_in.pair_keys(), sc.probe.pair_keys()).any()
    assert torch.equal(sc.fold_in.user_counts()[users], torch.full((5,), 6))

    big = build_scenario("U", _train(n_users=900), 0)
    assert big.task.deleted_users.numel() == 9


def test_scenario_s_single_requests_of_one_user_each() -> None:
    train = _train()
    sc = build_scenario("S", train, 0, n_requests=6)
    assert len(sc.requests) == 6
    owners = [int(r.user[0]) for r in sc.requests]
    assert len(set(owners)) == 6
    for req in sc.requests:
        assert 1 <= len(req) <= 3
        assert torch.unique(req.user).numel() == 1
        assert torch.isin(req.pair_keys(), train.pair_keys()).all()
    assert len(sc.task.deleted) == sum(len(r) for r in sc.requests)
    # every requesting user keeps training data, so FE stays defined
    assert (sc.task.remaining.user_counts()[torch.tensor(owners)] > 0).all()


def test_mixed_batch_counts_pairs_and_users() -> None:
    train = _train(n_users=300)
    task = mixed_batch(train, 0, n_requests=100, user_share=0.1)
    assert task.deleted_users.numel() == 10
    pair_rows = task.deleted.subset(~torch.isin(task.deleted.user, task.deleted_users))
    assert torch.unique(pair_rows.user).numel() == 90
