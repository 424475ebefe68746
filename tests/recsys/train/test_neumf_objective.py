"""NeuMFObjective: the objective's definition, its gradients, and the block solvers."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F

from recsys.config import NeuMFConfig
from recsys.data.interactions import Interactions
from recsys.models.neumf import NeuMF
from recsys.train import neumf_objective
from recsys.train.negatives import negative_pairs
from recsys.train.neumf_objective import NeuMFObjective

CFG = NeuMFConfig(
    gmf_dim=3, mlp_dim=3, mlp_layers=(5, 4), l2=0.05, neg_ratio=2, neg_weight=0.5, init_std=0.3
)
N_USERS, N_ITEMS = 12, 16


def _data() -> Interactions:
    """~50 distinct positives; the last user and the last item have no data at all."""
    g = torch.Generator().manual_seed(0)
    keys = torch.unique(torch.randint(0, (N_USERS - 1) * (N_ITEMS - 1), (70,), generator=g))
    return Interactions.from_pairs(keys // (N_ITEMS - 1), keys % (N_ITEMS - 1), N_USERS, N_ITEMS)


def _model(seed: int = 1) -> NeuMF:
    return NeuMF(N_USERS, N_ITEMS, CFG, generator=torch.Generator().manual_seed(seed)).double()


def _saturate(model: NeuMF) -> NeuMF:
    """A deliberately bad start: huge embeddings and output weights saturate the sigmoids."""
    with torch.no_grad():
        for emb in (model.gmf_user, model.gmf_item, model.mlp_user, model.mlp_item):
            emb.mul_(15.0)
        model.out.weight.mul_(5.0)
    return model


def _grads(objective: NeuMFObjective, model: NeuMF) -> list[torch.Tensor]:
    return list(torch.autograd.grad(objective.loss(model), list(model.parameters())))


def test_loss_is_weighted_bce_plus_l2_on_every_parameter() -> None:
    data, model = _data(), _model()
    objective = NeuMFObjective(data, CFG, seed=5)
    neg = negative_pairs(data, CFG.neg_ratio, 5)
    pos_f, neg_f = model.score(data.user, data.item), model.score(neg.user, neg.item)
    expected = (
        F.binary_cross_entropy_with_logits(pos_f, torch.ones_like(pos_f), reduction="sum")
        + CFG.neg_weight
        * F.binary_cross_entropy_with_logits(neg_f, torch.zeros_like(neg_f), reduction="sum")
        + CFG.l2 * sum((p**2).sum() for p in model.parameters())
    )
    expected = expected.detach()
    torch.testing.assert_close(objective.loss(model).detach(), expected)
    assert objective.value(model) == pytest.approx(float(expected), rel=1e-12)
    with torch.no_grad():  # a user without data still pays its L2
        model.gmf_user[N_USERS - 1, 0] += 1.0
        assert float(objective.loss(model)) > float(expected)


def test_objective_is_a_function_of_data_and_seed() -> None:
    data, model = _data(), _model()
    a, b = NeuMFObjective(data, CFG, seed=3), NeuMFObjective(data, CFG, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.pairs, b.pairs, strict=True))
    assert a.value(model) == b.value(model)
    assert a.value(model) != NeuMFObjective(data, CFG, seed=4).value(model)


def test_row_grad_norms_match_autograd() -> None:
    data, model = _data(), _model()
    objective = NeuMFObjective(data, CFG, seed=0)
    gu_g, gi_g, gu_m, gi_m = _grads(objective, model)[:4]
    users, items = objective.row_grad_norms(model)
    torch.testing.assert_close(users, torch.cat([gu_g, gu_m], 1).norm(dim=1))
    torch.testing.assert_close(items, torch.cat([gi_g, gi_m], 1).norm(dim=1))


@pytest.mark.parametrize("block", ["users", "items", "network"])
@pytest.mark.parametrize("saturated", [False, True])
def test_block_step_decreases_loss_and_touches_only_its_block(block: str, saturated: bool) -> None:
    data = _data()
    model = _saturate(_model()) if saturated else _model()
    objective = NeuMFObjective(data, CFG, seed=0)
    before = copy.deepcopy(model)
    loss0 = objective.value(model)
    if block == "users":
        stats = objective.solve_users(model, torch.arange(N_USERS))
        mine = {"gmf_user", "mlp_user"}
    elif block == "items":
        stats = objective.solve_items(model, torch.arange(N_ITEMS))
        mine = {"gmf_item", "mlp_item"}
    else:
        stats = objective.solve_network(model)
        mine = {name for name, _ in model.named_parameters() if "." in name}
    loss1 = objective.value(model)
    assert loss1 < loss0
    # the block's own objective accounts for the whole change of the full objective
    assert stats.loss_before - stats.loss_after == pytest.approx(loss0 - loss1, rel=1e-9)
    for (name, p), q in zip(model.named_parameters(), before.parameters(), strict=True):
        assert torch.equal(p, q) != (name in mine), name


def test_line_search_guards_every_row_from_a_saturated_start() -> None:
    """Full Newton steps overshoot on saturated sigmoids: backtracking must catch them, and
    no row's own loss (hence no block) may go up, step after step."""
    data, model = _data(), _saturate(_model())
    objective = NeuMFObjective(data, CFG, seed=0)
    backtracks, prev = 0, objective.value(model)
    for _ in range(3):
        for stats in (
            objective.solve_users(model, torch.arange(N_USERS)),
            objective.solve_items(model, torch.arange(N_ITEMS)),
            objective.solve_network(model),
        ):
            assert stats.loss_after <= stats.loss_before
            backtracks += stats.backtracks
            cur = objective.value(model)
            assert cur <= prev
            prev = cur
    assert backtracks > 0


def test_plain_newton_overshoots_from_the_saturated_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why the line search exists: without it, the same start makes the objective go up."""

    def full_step(*args: object) -> tuple[torch.Tensor, torch.Tensor, int]:
        _, theta, step, _, loss0, _, _ = args  # (row_losses, theta, step, grad, loss0, ...)
        assert isinstance(theta, torch.Tensor) and isinstance(step, torch.Tensor)
        assert isinstance(loss0, torch.Tensor)
        return theta + step, loss0, 0

    monkeypatch.setattr(neumf_objective, "armijo_rows", full_step)
    data, model = _data(), _saturate(_model())
    objective = NeuMFObjective(data, CFG, seed=0)
    loss0 = objective.value(model)
    objective.solve_users(model, torch.arange(N_USERS))
    assert objective.value(model) > 10 * loss0


def test_rows_without_data_step_to_zero_and_empty_blocks_do_nothing() -> None:
    data, model = _data(), _model()
    objective = NeuMFObjective(data, CFG, seed=0, damping=0.0)
    objective.solve_users(model, torch.tensor([N_USERS - 1, 0, N_USERS - 1]))
    # only L2 acts on it: one undamped Newton step is the exact minimiser, the zero row
    assert float(model.gmf_user.detach()[N_USERS - 1].abs().max()) < 1e-12
    assert float(model.mlp_user.detach()[N_USERS - 1].abs().max()) < 1e-12
    state = copy.deepcopy(model.state_dict())
    stats = objective.solve_items(model, torch.empty(0, dtype=torch.int64))
    assert stats.rows == 0 and stats.loss_before == stats.loss_after == 0.0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_newton_converges_quadratically_on_a_smooth_row_problem() -> None:
    """With the MLP tower cut off (w_h = 0) a row's objective is smooth and strictly convex:
    a few damped Newton steps must reach the exact row minimiser."""
    data, model = _data(), _model()
    with torch.no_grad():
        model.out.weight[0, CFG.gmf_dim :] = 0.0
    objective = NeuMFObjective(data, CFG, seed=0, damping=0.0)
    worst = []
    for _ in range(8):
        objective.solve_users(model, torch.arange(N_USERS))
        worst.append(float(objective.row_grad_norms(model)[0].max()))
    # quadratic: each step about squares the gradient (seen: 3e-2, 2e-4, 7e-9) ...
    assert worst[1] < 1e-3 and worst[2] < 1e-7
    # ... down to the floor where a step's decrease (~|g|^2 / h ~ 1e-19) is below the float64
    # resolution of the row's loss, so the Armijo test can no longer accept it (CPU-dependent:
    # one row stops at 2.8e-10 on an AMD EPYC, all below 1e-10 on other CPUs)
    assert worst[-1] < 1e-9


def test_chunking_does_not_change_the_steps() -> None:
    data = _data()
    big, small = _model(), _model()
    # CG solved to convergence: truncated CG would differ within its tolerance
    obj_big = NeuMFObjective(data, CFG, seed=0, cg_iters=150, cg_tol=1e-13)
    obj_small = NeuMFObjective(
        data, CFG, seed=0, chunk_size=7, cache_floats=0, cg_iters=150, cg_tol=1e-13
    )
    for obj, model in ((obj_big, big), (obj_small, small)):
        obj.solve_users(model, torch.arange(N_USERS))
        obj.solve_items(model, torch.arange(N_ITEMS))
        obj.solve_network(model)
    for p, q in zip(big.parameters(), small.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-9, rtol=1e-9)


def test_alternation_from_random_init_converges() -> None:
    data, model = _data(), _model()
    objective = NeuMFObjective(data, CFG, seed=0)
    grad0 = torch.cat([g.reshape(-1) for g in _grads(objective, model)]).norm()
    losses = [objective.value(model)]
    for _ in range(20):
        objective.solve_users(model, torch.arange(N_USERS))
        objective.solve_items(model, torch.arange(N_ITEMS))
        objective.solve_network(model)
        losses.append(objective.value(model))
    assert all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.15 * losses[0]
    rel = [(a - b) / b for a, b in itertools.pairwise(losses)]  # per-round decrease
    assert max(rel[-3:]) < 0.03 and max(rel[-3:]) < 0.03 * max(rel[:3])  # it levels off
    # The gradient does not vanish fast: ReLU kinks (and units L2 shrinks to exactly zero) can
    # hold a minimiser, and alternating blocks zig-zag along the scale valley of the
    # trilinear w_g . (p_u * q_i). It must still be well below its value at the init.
    grad = torch.cat([g.reshape(-1) for g in _grads(objective, model)]).norm()
    assert grad < 0.5 * grad0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    data = _data()
    cpu, gpu = _model(), _model().cuda()
    objective = NeuMFObjective(data, CFG, seed=0)
    for model in (cpu, gpu):
        objective.solve_users(model, torch.arange(N_USERS))
        objective.solve_items(model, torch.arange(N_ITEMS))
        objective.solve_network(model)
    for p, q in zip(cpu.parameters(), gpu.parameters(), strict=True):
        torch.testing.assert_close(p, q.cpu(), atol=1e-8, rtol=1e-8)
