"""The batched NeuMF row solvers agree with the slow per-row autograd reference."""

from __future__ import annotations

import copy

import pytest
import torch

from recsys.config import NeuMFConfig
from recsys.data.interactions import Interactions
from recsys.models.neumf import NeuMF
from recsys.train.neumf_objective import NeuMFObjective
from recsys.unlearn.reference_neumf import reference_solve_items, reference_solve_users

CFG = NeuMFConfig(gmf_dim=3, mlp_dim=2, mlp_layers=(5, 3), l2=0.02, neg_ratio=2, init_std=0.4)
N_USERS, N_ITEMS = 9, 13


def _setup(saturated: bool) -> tuple[NeuMFObjective, NeuMF]:
    g = torch.Generator().manual_seed(0)
    keys = torch.unique(torch.randint(0, (N_USERS - 1) * N_ITEMS, (45,), generator=g))
    data = Interactions.from_pairs(keys // N_ITEMS, keys % N_ITEMS, N_USERS, N_ITEMS)
    model = NeuMF(N_USERS, N_ITEMS, CFG, generator=torch.Generator().manual_seed(2)).double()
    if saturated:  # large logits: full Newton steps overshoot and the line search works
        with torch.no_grad():
            for emb in (model.gmf_user, model.gmf_item, model.mlp_user, model.mlp_item):
                emb.mul_(12.0)
    # chunk_size=16 splits the rows into several groups, as on real data
    return NeuMFObjective(data, CFG, 1, chunk_size=16), model


@pytest.mark.parametrize("side", ["users", "items"])
@pytest.mark.parametrize("saturated", [False, True])
def test_batched_equals_reference(side: str, saturated: bool) -> None:
    objective, model = _setup(saturated)
    ref_model = copy.deepcopy(model)
    n = N_USERS if side == "users" else N_ITEMS
    rows = torch.tensor([n - 1, *range(0, n - 1, 2)])  # unsorted; includes a row without data
    backtracks = 0
    for _ in range(2):  # the second pass starts from an already-moved point
        if side == "users":
            got = objective.solve_users(model, rows)
            ref = reference_solve_users(objective, ref_model, rows)
        else:
            got = objective.solve_items(model, rows)
            ref = reference_solve_items(objective, ref_model, rows)
        assert got.rows == ref.rows == rows.numel()
        assert got.backtracks == ref.backtracks
        backtracks += got.backtracks
        assert got.loss_before == pytest.approx(ref.loss_before, rel=1e-10)
        assert got.loss_after == pytest.approx(ref.loss_after, rel=1e-10)
        for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
            torch.testing.assert_close(p, q, atol=1e-5, rtol=0)
    if saturated:
        assert backtracks > 0  # the comparison covered the line search's shrink rule
