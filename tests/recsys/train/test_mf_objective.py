import copy

import pytest
import torch

from recsys.config import MFConfig
from recsys.models.mf import MF
from recsys.train.mf_objective import MFObjective
from recsys.unlearn.reference import reference_solve_mf_rows
from tests.recsys.conftest import random_interactions


def _model(n_users: int, n_items: int, dim: int, seed: int = 0) -> MF:
    return MF(n_users, n_items, dim, 0.3, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("side", ["users", "items"])
@pytest.mark.parametrize("l2_exponent", [0.0, 1.0])
@pytest.mark.parametrize("dim", [4, 16])  # dim 4: long rows take the Cholesky path; 16: Woodbury
@pytest.mark.parametrize("c", [2.0, 0.1])  # c == w0: every row shares G's eigenbasis solve
def test_batched_solve_matches_reference(side: str, l2_exponent: float, dim: int, c: float) -> None:
    data = random_interactions(30, 80, 600, seed=1)
    # one extra user and item without data must come out as zero rows
    data = type(data).from_pairs(data.user, data.item, 31, 81)
    obj = MFObjective(data, MFConfig(dim=dim, l2=0.3, w0=0.1, c=c, l2_exponent=l2_exponent))
    fast, slow = _model(31, 81, dim), _model(31, 81, dim)
    n = 31 if side == "users" else 81
    rows = torch.arange(n)
    (obj.solve_users if side == "users" else obj.solve_items)(fast, rows)
    reference_solve_mf_rows(obj, slow, side, rows)
    emb_fast = fast.user_emb if side == "users" else fast.item_emb
    emb_slow = slow.user_emb if side == "users" else slow.item_emb
    torch.testing.assert_close(emb_fast, emb_slow, atol=1e-9, rtol=1e-7)
    assert float(emb_fast.detach()[n - 1].abs().max()) == 0.0


def test_block_solve_is_exact_minimiser() -> None:
    data = random_interactions(25, 50, 400, seed=2)
    obj = MFObjective(data, MFConfig(dim=6, l2=0.2, w0=0.05))
    m = _model(25, 50, 6)
    before = float(obj.loss(m).detach())
    stats = obj.solve_users(m, torch.arange(25))
    after_users = float(obj.loss(m))
    assert after_users < before
    # the reported decrease of the block equals the objective's decrease
    assert stats.loss_before - stats.loss_after == pytest.approx(before - after_users, rel=1e-6)
    gu, gi = obj.row_grad_norms(m)
    assert float(gu.max()) < 1e-8  # users sit at their exact minimum given the items
    assert float(gi.max()) > 1e-3
    # gradient from row_grad_norms agrees with autograd
    m2 = copy.deepcopy(m)
    obj.loss(m2).backward()
    assert m2.item_emb.grad is not None
    torch.testing.assert_close(gi, m2.item_emb.grad.norm(dim=1))


def test_loss_matches_dense_definition() -> None:
    data = random_interactions(10, 15, 60, seed=3)
    cfg = MFConfig(dim=3, l2=0.5, w0=0.2, c=3.0, l2_exponent=0.5)
    obj = MFObjective(data, cfg)
    m = _model(10, 15, 3)
    s = m.user_emb @ m.item_emb.T
    obs = torch.zeros(10, 15, dtype=torch.bool)
    obs[data.user, data.item] = True
    dense = torch.where(obs, cfg.c * (1 - s) ** 2, cfg.w0 * s**2).sum()
    lam_u = cfg.l2 * (obs.sum(1) + cfg.w0 * 15) ** 0.5
    lam_i = cfg.l2 * (obs.sum(0) + cfg.w0 * 10) ** 0.5
    dense = (
        dense + (lam_u * m.user_emb.pow(2).sum(1)).sum() + (lam_i * m.item_emb.pow(2).sum(1)).sum()
    )
    assert float(obj.loss(m)) == pytest.approx(float(dense), rel=1e-6)


def test_curvature_is_mean_hessian_eigenvalue() -> None:
    data = random_interactions(8, 12, 40, seed=4)
    cfg = MFConfig(dim=4, l2=0.3, w0=0.1, c=1.5)
    obj = MFObjective(data, cfg)
    m = _model(8, 12, 4)
    hu, _ = obj.row_curvatures(m)
    y = m.item_emb.detach()
    u0 = data.item[data.user == 0]
    hess = 2 * (cfg.w0 * y.T @ y + (cfg.c - cfg.w0) * y[u0].T @ y[u0] + cfg.l2 * torch.eye(4))
    assert float(hu[0]) == pytest.approx(float(torch.trace(hess) / 4), rel=1e-6)


def test_rejects_c_below_w0() -> None:
    data = random_interactions(5, 5, 10, seed=5)
    with pytest.raises(ValueError, match="c"):
        MFObjective(data, MFConfig(c=0.01, w0=0.1))
