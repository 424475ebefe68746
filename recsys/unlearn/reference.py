"""Slow, obvious per-row reference solvers: the batched solvers are tested against them."""

from __future__ import annotations

import torch

from recsys.models.mf import MF
from recsys.train.mf_objective import MFObjective


@torch.no_grad()
def reference_solve_mf_rows(
    objective: MFObjective, model: MF, side: str, rows: torch.Tensor
) -> None:
    """Re-solve each given row of ``side`` ("users" or "items") exactly, in float64, one by one.

    x_r = (w0 Y^T Y + (c - w0) sum_{j in S_r} y_j y_j^T + lam_r I)^{-1} (c sum_{j in S_r} y_j)
    """
    cfg, data = objective.cfg, objective.data
    if side == "users":
        emb, other, own, theirs, reg = (
            model.user_emb,
            model.item_emb,
            data.user,
            data.item,
            objective.user_reg,
        )
    elif side == "items":
        emb, other, own, theirs, reg = (
            model.item_emb,
            model.user_emb,
            data.item,
            data.user,
            objective.item_reg,
        )
    else:
        raise ValueError(f"side must be 'users' or 'items', got {side!r}")
    y = other.detach().double()
    gram = y.T @ y
    for r in rows.tolist():
        cols = theirs[own == r]
        a = cfg.w0 * gram + float(reg[r]) * torch.eye(y.shape[1], dtype=torch.float64)
        b = torch.zeros(y.shape[1], dtype=torch.float64)
        for j in cols.tolist():
            a += (cfg.c - cfg.w0) * torch.outer(y[j], y[j])
            b += cfg.c * y[j]
        emb.data[r] = torch.linalg.solve(a, b).to(emb.dtype)
