"""Batched per-row Newton machinery shared by the block solvers.

Each row r of a block is its own small problem min_theta L_r(theta): these helpers build
every row's Hessian from per-pair Jacobians, take damped Newton steps with one batched
Cholesky, and run a per-row Armijo line search, all vectorised over rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

_CHOLESKY_TRIES = 8  # times a failed row's damping is raised tenfold before giving up


def segment_gram(x: torch.Tensor, local: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-row Gram matrices sum_{n in row r} x_n x_n^T, (n, D) -> (R, D, D).

    ``local`` (n,) is each pair's row, sorted; ``counts`` (R,) the pairs per row. Rows are
    bucketed by ceil(log2(count)) and zero-padded to the bucket's size, so one bmm per
    bucket does the work with at most 2x padding and without materialising (n, D, D).
    """
    n_rows, dim = counts.numel(), x.shape[1]
    out = x.new_zeros(n_rows, dim, dim)  # (R, D, D)
    if x.shape[0] == 0:
        return out
    first = torch.cumsum(counts, 0) - counts  # (R,)
    pos = torch.arange(x.shape[0], device=x.device) - first[local]  # (n,) rank inside row
    bucket = torch.ceil(torch.log2(counts.clamp_min(1).to(torch.float64))).to(torch.int64)
    bucket[counts == 0] = -1  # rows without pairs keep a zero Gram matrix
    pair_bucket = bucket[local]  # (n,)
    slot = torch.empty(n_rows, dtype=torch.int64, device=x.device)
    for k in torch.unique(bucket).tolist():
        if k < 0:
            continue
        rows_k = torch.nonzero(bucket == k).squeeze(1)  # (Rk,)
        slot[rows_k] = torch.arange(rows_k.numel(), device=x.device)
        sel = torch.nonzero(pair_bucket == k).squeeze(1)  # (nk,)
        buf = x.new_zeros(rows_k.numel(), 1 << k, dim)  # (Rk, 2^k, D)
        buf[slot[local[sel]], pos[sel]] = x[sel]
        out[rows_k] = buf.transpose(1, 2) @ buf  # (Rk, D, D): X_r^T X_r
    return out


def newton_step(hess: torch.Tensor, grad: torch.Tensor, damping: float) -> torch.Tensor:
    """Damped Newton steps -(H_r + lam_r I)^-1 g_r for every row, (R, D, D), (R, D) -> (R, D).

    lam_r = damping * trace(H_r) / D; rows whose Cholesky fails get lam_r raised tenfold
    (a few times), and any row still failing falls back to a scaled gradient step.
    """
    dim = hess.shape[-1]
    eye = torch.eye(dim, dtype=hess.dtype, device=hess.device)  # (D, D)
    scale = hess.diagonal(dim1=-2, dim2=-1).sum(-1) / dim  # (R,) trace(H)/D
    lam = damping * scale  # (R,)
    floor = torch.finfo(hess.dtype).eps * (1 + scale.abs())  # (R,) smallest useful damping
    chol, info = torch.linalg.cholesky_ex(hess + lam[:, None, None] * eye)  # (R, D, D)
    for _ in range(_CHOLESKY_TRIES):
        bad = info != 0  # (R,)
        if not bool(bad.any()):
            break
        lam = torch.where(bad, torch.maximum(lam * 10, floor), lam)
        chol[bad], info[bad] = torch.linalg.cholesky_ex(hess[bad] + lam[bad, None, None] * eye)
    step = -torch.cholesky_solve(grad[..., None], chol).squeeze(-1)  # (R, D)
    bad = info != 0
    if bool(bad.any()):
        step[bad] = -grad[bad] / (scale[bad, None].abs() + lam[bad, None] + floor[bad, None])
    return step


def shrink_step(
    alpha: torch.Tensor, slope: torch.Tensor, loss0: torch.Tensor, loss_a: torch.Tensor
) -> torch.Tensor:
    """The next, smaller step length after alpha failed Armijo (safeguarded interpolation).

    Minimiser of the quadratic through L(0), L'(0) = slope and L(alpha), clamped to
    [0.1 alpha, 0.5 alpha]: it at least halves, but cuts much deeper when the trial loss
    exploded (saturated sigmoids), where plain halving would run out of backtracks.
    """
    curvature = loss_a - loss0 - slope * alpha  # > 0 whenever Armijo failed on a descent step
    fit = -slope * alpha**2 / (2 * curvature)  # argmin of the interpolating quadratic
    fit = torch.where(torch.isfinite(fit) & (curvature > 0), fit, 0.5 * alpha)
    return torch.minimum(torch.maximum(fit, 0.1 * alpha), 0.5 * alpha)


def armijo_rows(
    row_losses: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    theta: torch.Tensor,
    step: torch.Tensor,
    grad: torch.Tensor,
    loss0: torch.Tensor,
    c: float,
    max_backtracks: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-row backtracking line search, vectorised over rows.

    ``row_losses(trial (R, D), active (R,) bool) -> (R_active,)`` evaluates the active rows'
    own objectives at the trial point. A row accepts the first alpha (1, then shrink_step)
    with L_r(theta + alpha d) <= L_r(theta) + c alpha g.d; a row that never does keeps its old
    value (alpha = 0), so no row, hence no block, ever increases the objective.
    Returns (new theta (R, D), new row losses (R,), total halvings).
    """
    n_rows = theta.shape[0]
    alpha = torch.ones(n_rows, dtype=theta.dtype, device=theta.device)  # (R,)
    slope = (grad * step).sum(1)  # (R,) directional derivative g.d (< 0 for descent)
    active = torch.ones(n_rows, dtype=torch.bool, device=theta.device)  # (R,)
    loss1 = loss0.clone()  # (R,)
    backtracks = 0
    for attempt in range(max_backtracks + 1):
        rows_a = torch.nonzero(active).squeeze(1)  # (Ra,)
        trial = theta + alpha[:, None] * step  # (R, D)
        new = row_losses(trial, active)  # (Ra,)
        ok = new <= loss0[rows_a] + c * alpha[rows_a] * slope[rows_a]  # (Ra,) Armijo
        loss1[rows_a[ok]] = new[ok]
        active[rows_a[ok]] = False
        if not bool(active.any()):
            break
        if attempt < max_backtracks:
            fail = rows_a[~ok]  # (Rf,)
            alpha[fail] = shrink_step(alpha[fail], slope[fail], loss0[fail], new[~ok])
            backtracks += fail.numel()
    alpha[active] = 0.0  # rows with no acceptable step stay where they were
    return theta + alpha[:, None] * step, loss1, backtracks
