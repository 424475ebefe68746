"""A slow, obvious reference for NeuMFObjective's batched row solvers (used by tests).

Each row is handled on its own in a Python loop, with autograd for everything: the row's
loss (its own pairs' weighted BCE + l2 ||row||^2), its gradient, its Gauss-Newton Hessian
J^T diag(w s (1 - s)) J + 2 l2 I from the autograd Jacobian of the row's logits, the same
damping (damping * trace/D, raised tenfold while Cholesky fails) and the same Armijo
backtracking (interpolated, at least halving). The batched solver must agree with it to rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recsys.models.neumf import NeuMF
from recsys.train.blocks import BlockStats
from recsys.train.neumf_objective import NeuMFObjective

_ARMIJO_C = 1e-4


def _solve_row(
    objective: NeuMFObjective, model: NeuMF, side: str, row: int, stats: BlockStats
) -> None:
    user, item = objective.pairs.user, objective.pairs.item
    dev, dtype = model.gmf_user.device, model.gmf_user.dtype
    mine = (user if side == "user" else item) == row
    target = objective.pairs.target[mine].to(dev, dtype)
    weight = objective.pairs.weight[mine].to(dev, dtype)
    others = (item if side == "user" else user)[mine].to(dev)
    g, l2 = model.gmf_dim, objective.cfg.l2
    own_g, own_m = (
        (model.gmf_user, model.mlp_user) if side == "user" else (model.gmf_item, model.mlp_item)
    )
    oth_g, oth_m = (
        (model.gmf_item, model.mlp_item) if side == "user" else (model.gmf_user, model.mlp_user)
    )

    def logits(theta: torch.Tensor) -> torch.Tensor:
        n = others.numel()
        own_gmf, own_mlp = theta[:g].expand(n, -1), theta[g:].expand(n, -1)
        if side == "user":
            return model.logits(own_gmf, oth_g[others], own_mlp, oth_m[others])
        return model.logits(oth_g[others], own_gmf, oth_m[others], own_mlp)

    def row_loss(theta: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits(theta), target, reduction="none")
        return (weight * bce).sum() + l2 * (theta**2).sum()

    theta = torch.cat([own_g[row], own_m[row]]).detach().clone().requires_grad_(True)
    loss0 = row_loss(theta)
    (grad,) = torch.autograd.grad(loss0, theta)
    loss0 = loss0.detach()
    dim = theta.numel()
    theta = theta.detach()
    if others.numel() > 0:
        jac = torch.autograd.functional.jacobian(logits, theta)  # (n, D)
        s = torch.sigmoid(logits(theta)).detach()
        hess = jac.T @ torch.diag(weight * s * (1 - s)) @ jac + 2 * l2 * torch.eye(
            dim, dtype=dtype, device=dev
        )
    else:
        hess = 2 * l2 * torch.eye(dim, dtype=dtype, device=dev)
    scale = torch.trace(hess) / dim
    lam = objective.damping * scale
    floor = torch.finfo(dtype).eps * (1 + scale.abs())
    for _ in range(9):
        chol, info = torch.linalg.cholesky_ex(hess + lam * torch.eye(dim, dtype=dtype, device=dev))
        if int(info) == 0:
            break
        lam = torch.maximum(lam * 10, floor)
    step = -torch.cholesky_solve(grad[:, None], chol)[:, 0]

    alpha, accepted, slope = 1.0, False, float(grad @ step)
    with torch.no_grad():
        for attempt in range(objective.max_backtracks + 1):
            new = row_loss(theta + alpha * step)
            if new <= loss0 + _ARMIJO_C * alpha * slope:
                accepted = True
                break
            if attempt < objective.max_backtracks:
                # quadratic through L(0), L'(0), L(alpha); its minimiser, kept in [0.1, 0.5] alpha
                curvature = float(new) - float(loss0) - slope * alpha
                fit = -slope * alpha**2 / (2 * curvature) if curvature > 0 else 0.5 * alpha
                alpha = min(max(fit, 0.1 * alpha), 0.5 * alpha)
                stats.backtracks += 1
        if not accepted:
            alpha, new = 0.0, loss0
        theta = theta + alpha * step
        own_g[row] = theta[:g]
        own_m[row] = theta[g:]
    stats.loss_before += float(loss0)
    stats.loss_after += float(new)


def _solve(objective: NeuMFObjective, model: NeuMF, rows: torch.Tensor, side: str) -> BlockStats:
    rows = torch.unique(rows.to(torch.int64))
    stats = BlockStats(rows=int(rows.numel()), loss_before=0.0, loss_after=0.0)
    for row in rows.tolist():
        _solve_row(objective, model, side, row, stats)
    return stats


def reference_solve_users(
    objective: NeuMFObjective, model: NeuMF, users: torch.Tensor
) -> BlockStats:
    return _solve(objective, model, users, "user")


def reference_solve_items(
    objective: NeuMFObjective, model: NeuMF, items: torch.Tensor
) -> BlockStats:
    return _solve(objective, model, items, "item")
