"""Metrics on hand-built models whose rankings are known exactly."""

from __future__ import annotations

import math

import pytest
import torch

from recsys.config import NeuMFConfig, ProjectConfig
from recsys.data.interactions import Interactions
from recsys.metrics import (
    consistency_gap,
    embedding_distance,
    fold_in_users,
    forget_exposure,
    hit_ndcg,
    mann_whitney_auc,
    mia_auc,
    rank_counts,
)
from recsys.models.mf import MF
from recsys.models.neumf import NeuMF


def _pairs(pairs: list[tuple[int, int]], n_users: int = 4, n_items: int = 5) -> Interactions:
    u = torch.tensor([p[0] for p in pairs], dtype=torch.int64)
    i = torch.tensor([p[1] for p in pairs], dtype=torch.int64)
    return Interactions.from_pairs(u, i, n_users, n_items)


@pytest.fixture
def mf() -> MF:
    """4 users x 5 items; item i scores 5 - i for a user (1, 0), the reverse for (-1, 0).

    user 0: [5, 4, 3, 2, 1]; user 1: [-5, -4, -3, -2, -1]; user 2: all 0 (ties); user 3 = user 0.
    """
    model = MF(4, 5, dim=2)
    with torch.no_grad():
        model.item_emb.copy_(torch.tensor([[5.0, 0], [4, 0], [3, 0], [2, 0], [1, 0]]))
        model.user_emb.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 0], [1, 0]]))
    return model


TRAIN = [(0, 0), (1, 4), (2, 1)]  # user 3 has no training data left
TEST = [(0, 2), (1, 0), (2, 3)]
DELETED = [(0, 1), (0, 3), (1, 3), (3, 0)]


def test_hit_ndcg_exact(mf: MF) -> None:
    train, test = _pairs(TRAIN), _pairs(TEST)
    # 0-based ranks among non-train items: u0 -> 1, u1 -> 3, u2 -> 3 (ties count against it)
    hr, ndcg = hit_ndcg(mf, train, test, k=2)
    assert hr == pytest.approx(1 / 3)
    assert ndcg == pytest.approx((1 / math.log2(3)) / 3)
    hr, ndcg = hit_ndcg(mf, train, test, k=4)
    assert hr == pytest.approx(1.0)
    assert ndcg == pytest.approx((1 / math.log2(3) + 2 / math.log2(5)) / 3)


def test_hit_ndcg_constant_model_gets_no_free_hits(mf: MF) -> None:
    # user 2 scores every item 0: the test item ties with its 3 other candidates -> 0-based
    # rank 3, outside the top 3 (an optimistic tie-break would put it first)
    hr, _ = hit_ndcg(mf, _pairs([(2, 1)]), _pairs([(2, 3)]), k=3)
    assert hr == 0.0


def test_forget_exposure_counts_other_deleted_items_as_unseen(mf: MF) -> None:
    remaining, deleted = _pairs(TRAIN), _pairs(DELETED)
    # (0,1) rank 1; (0,3) rank 3 because the deleted item 1 still competes; (1,3) rank 1.
    # (3,0): user 3 has no remaining data -> left out.
    fe, median_rank = forget_exposure(mf, remaining, deleted, k=2)
    assert fe == pytest.approx(2 / 3)
    assert median_rank == 1.0
    fe3, _ = forget_exposure(mf, remaining, deleted, k=3)
    assert fe3 == 1.0


def test_forget_exposure_without_qualifying_pairs_is_nan(mf: MF) -> None:
    fe, rank = forget_exposure(mf, _pairs(TRAIN), _pairs([(3, 0)]))
    assert math.isnan(fe) and math.isnan(rank)


def test_mia_auc_exact_with_ties(mf: MF) -> None:
    # positives' percentiles: 1, 1/3, 1 (user 3 dropped); held-out: 2/3, 0, 0.5 (all ties)
    auc = mia_auc(mf, _pairs(TRAIN), _pairs(DELETED), _pairs(TEST))
    assert auc == pytest.approx(7 / 9)


def test_mann_whitney_counts_ties_half() -> None:
    assert mann_whitney_auc(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 0.0])) == 0.875
    assert mann_whitney_auc(torch.tensor([0.3]), torch.tensor([0.3])) == 0.5
    assert math.isnan(mann_whitney_auc(torch.tensor([]), torch.tensor([0.3])))


def test_rank_counts_chunking_does_not_change_results() -> None:
    gen = torch.Generator().manual_seed(0)
    model = MF(30, 40, dim=3, generator=gen)
    excl = Interactions.from_pairs(
        torch.randint(0, 30, (200,), generator=gen),
        torch.randint(0, 40, (200,), generator=gen),
        30,
        40,
    )
    tu, ti = torch.randint(0, 30, (90,), generator=gen), torch.randint(0, 40, (90,), generator=gen)
    whole = rank_counts(model, excl, tu, ti, chunk_users=1000)
    for chunk in (1, 7):
        parts = rank_counts(model, excl, tu, ti, chunk_users=chunk)
        for a, b in zip(whole, parts, strict=True):
            assert torch.equal(a, b)


def test_consistency_gap() -> None:
    assert consistency_gap(0.3, 0.1, 0.5) == pytest.approx(0.5)
    assert consistency_gap(0.5, 0.1, 0.5) == pytest.approx(1.0)  # noop itself
    assert consistency_gap(0.0, 0.1, 0.5) == pytest.approx(0.25)  # over-forgetting is a gap too
    # nothing to forget (noop == retrain): 0 if the method matches too, inf if it moved away
    assert consistency_gap(0.1, 0.1, 0.1) == 0.0
    assert consistency_gap(0.2, 0.1, 0.1) == math.inf
    assert math.isnan(consistency_gap(math.nan, 0.1, 0.5))


def test_embedding_distance_mf_and_neumf() -> None:
    def mf_with(items: torch.Tensor) -> MF:
        m = MF(2, 3, dim=2)
        with torch.no_grad():
            m.item_emb.copy_(items)
        return m

    ref = mf_with(torch.zeros(3, 2))
    noop = mf_with(torch.ones(3, 2))  # ||noop - ref|| = sqrt(6)
    half = mf_with(torch.full((3, 2), 0.5))
    assert embedding_distance(half, ref, noop) == pytest.approx(0.5)
    assert embedding_distance(ref, ref, noop) == 0.0

    cfg = NeuMFConfig(gmf_dim=2, mlp_dim=3, mlp_layers=(4,))
    a, b, c = (NeuMF(2, 3, cfg, generator=torch.Generator().manual_seed(s)) for s in range(3))
    with torch.no_grad():
        c.gmf_item.copy_(a.gmf_item + 2 * (b.gmf_item - a.gmf_item))
        c.mlp_item.copy_(a.mlp_item + 2 * (b.mlp_item - a.mlp_item))
    # c is twice as far from a as b is, over both towers' item tables
    assert embedding_distance(c, a, b) == pytest.approx(2.0)


def test_fold_in_users_resolves_only_given_rows_exactly() -> None:
    cfg = ProjectConfig()
    gen = torch.Generator().manual_seed(1)
    model = MF(3, 6, dim=cfg.mf.dim, generator=gen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = _pairs([(1, 0), (1, 2), (1, 5), (0, 3)], n_users=3, n_items=6)
    folded = fold_in_users(model, "mf", cfg, 0, torch.tensor([1]), history)
    assert isinstance(folded, MF)

    # closed form of the iALS user step: (w0 Y'Y + (c - w0) sum y_i y_i' + l2 I)^-1 c sum y_i
    y, m = model.item_emb.detach(), cfg.mf
    yi = y[[0, 2, 5]]
    a = m.w0 * y.T @ y + (m.c - m.w0) * yi.T @ yi + m.l2 * torch.eye(m.dim)
    expected = torch.linalg.solve(a, m.c * yi.sum(0))
    assert torch.allclose(folded.user_emb[1], expected, atol=1e-4)
    assert torch.equal(folded.user_emb[0], before["user_emb"][0])  # not asked for: untouched
    assert torch.equal(folded.item_emb, before["item_emb"])
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # a copy
