"""The iALS objective for MF and its exact block solvers (Hu et al. 2008; Rendle et al. 2021).

    L(X, Y) = sum_{(u,i) in S} c (1 - x_u.y_i)^2 + w0 sum_{(u,i) not in S} (x_u.y_i)^2
              + sum_u lam_u ||x_u||^2 + sum_i lam_i ||y_i||^2

with lam_u = l2 * (|S_u| + w0 * n_items)^nu (frequency-scaled L2, nu = cfg.l2_exponent).
With Y fixed, each user's loss is a quadratic in x_u, so its Newton step is exact:

    A_u = w0 * Y^T Y + (c - w0) * sum_{i in S_u} y_i y_i^T + lam_u I      (d x d)
    b_u = c * sum_{i in S_u} y_i
    x_u = A_u^{-1} b_u

The unobserved term is summed over all items through the Gramian Y^T Y, so nothing of
size users x items is ever built; memory grows with |S| only.
"""

from __future__ import annotations

import torch
from torch import nn

from recsys.config import MFConfig
from recsys.data.interactions import Interactions
from recsys.models.mf import MF
from recsys.train.blocks import BlockStats
from recsys.train.sparse import CSR, padded_groups

# Interactions processed per chunk in O(|S| d) passes (loss, gradients): bounds memory.
ROW_CHUNK = 1 << 20


class MFObjective:
    """iALS objective on one training set; implements the BlockObjective protocol."""

    def __init__(self, data: Interactions, cfg: MFConfig) -> None:
        if cfg.c < cfg.w0:
            raise ValueError(f"MF config: c ({cfg.c}) must be >= w0 ({cfg.w0})")
        self.data = data
        self.cfg = cfg
        self.by_user = CSR.build(data.user, data.item, data.n_users)
        self.by_item = CSR.build(data.item, data.user, data.n_items)
        n_u, n_i = data.n_users, data.n_items
        deg_u = self.by_user.degree().to(torch.float64)
        deg_i = self.by_item.degree().to(torch.float64)
        self.user_reg = (cfg.l2 * (deg_u + cfg.w0 * n_i) ** cfg.l2_exponent).float()  # (n_users,)
        self.item_reg = (cfg.l2 * (deg_i + cfg.w0 * n_u) ** cfg.l2_exponent).float()  # (n_items,)
        self._device = torch.device("cpu")

    def _on(self, device: torch.device) -> None:
        """Move the index structures to the model's device once."""
        if device != self._device:
            self.by_user = self.by_user.to(device)
            self.by_item = self.by_item.to(device)
            self.user_reg = self.user_reg.to(device)
            self.item_reg = self.item_reg.to(device)
            self.data = Interactions(
                self.data.user.to(device),
                self.data.item.to(device),
                self.data.value.to(device),
                self.data.ts.to(device),
                self.data.n_users,
                self.data.n_items,
            )
            self._device = device

    @staticmethod
    def _mf(model: nn.Module) -> MF:
        if not isinstance(model, MF):
            raise TypeError(f"MFObjective needs an MF model, got {type(model).__name__}")
        return model

    def loss(self, model: nn.Module) -> torch.Tensor:
        mf = self._mf(model)
        self._on(mf.user_emb.device)
        # float64: the Gramian form below cancels large terms, and float32 rounding then moves
        # the value by ~1e-5 relative (CPU-dependent), more than a converged epoch's decrease
        x, y = mf.user_emb.double(), mf.item_emb.double()
        c, w0 = self.cfg.c, self.cfg.w0
        # sum over all cells of s^2 = <X^T X, Y^T Y>; observed cells then swap w0 s^2 for c(1-s)^2
        total = w0 * ((x.T @ x) * (y.T @ y)).sum()
        u, i = self.data.user, self.data.item
        for start in range(0, u.numel(), ROW_CHUNK):
            s = (x[u[start : start + ROW_CHUNK]] * y[i[start : start + ROW_CHUNK]]).sum(-1)  # (n,)
            total = total + (c * (1 - s) ** 2 - w0 * s**2).sum()
        reg = (self.user_reg * x.pow(2).sum(1)).sum() + (self.item_reg * y.pow(2).sum(1)).sum()
        return total + reg

    @torch.no_grad()
    def _solve(
        self,
        emb: torch.Tensor,
        other: torch.Tensor,
        csr: CSR,
        reg: torch.Tensor,
        rows: torch.Tensor,
    ) -> BlockStats:
        c, w0, d = self.cfg.c, self.cfg.w0, emb.shape[1]
        rows = rows.to(emb.device)
        gram = w0 * (other.T @ other)  # (d, d) = w0 Y^T Y
        # eigenbasis of the shared part: (w0 G + lam I)^-1 = Q diag(1 / (Lam + lam)) Q^T for any lam
        lam_g, q = torch.linalg.eigh(gram.double())
        lam_g, q = lam_g.clamp(min=0).to(emb.dtype), q.to(emb.dtype)  # (d,), (d, d)
        other_rot = other @ q  # (n_other, d): columns' factors in that basis
        before = after = 0.0
        empty = rows[csr.degree()[rows] == 0]
        if empty.numel():
            # no data: the minimiser of x^T (w0 G + lam I) x is x = 0 (a deleted user's row)
            x0 = emb[empty]
            before += float(((x0 @ gram) * x0).sum() + (reg[empty] * x0.pow(2).sum(1)).sum())
            emb[empty] = 0.0
        for rows_b, cols_b, mask_b in padded_groups(csr, rows, d):
            x_old = emb[rows_b]  # (B, d)
            if c == w0 or cols_b.shape[1] <= d // 2:
                z = other_rot[cols_b] * mask_b[..., None].to(other.dtype)  # (B, L, d)
                x_new, q_old, q_new = _woodbury_rows(z, lam_g, reg[rows_b], q, x_old, c, w0)
            else:
                f = other[cols_b] * mask_b[..., None].to(other.dtype)  # (B, L, d)
                x_new, q_old, q_new = _cholesky_rows(f, gram, reg[rows_b], x_old, c, w0)
            before += q_old
            after += q_new
            emb[rows_b] = x_new
        return BlockStats(rows=int(rows.numel()), loss_before=before, loss_after=after)

    def solve_users(self, model: nn.Module, users: torch.Tensor) -> BlockStats:
        mf = self._mf(model)
        self._on(mf.user_emb.device)
        return self._solve(mf.user_emb.data, mf.item_emb.data, self.by_user, self.user_reg, users)

    def solve_items(self, model: nn.Module, items: torch.Tensor) -> BlockStats:
        mf = self._mf(model)
        self._on(mf.user_emb.device)
        return self._solve(mf.item_emb.data, mf.user_emb.data, self.by_item, self.item_reg, items)

    def solve_network(self, model: nn.Module) -> BlockStats | None:
        return None

    @torch.no_grad()
    def row_grad_norms(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        mf = self._mf(model)
        self._on(mf.user_emb.device)
        x, y, c, w0 = mf.user_emb.data, mf.item_emb.data, self.cfg.c, self.cfg.w0
        # dL/dx_u = 2 [w0 G_y x_u + sum_{i in S_u} ((c - w0) s_ui - c) y_i + lam_u x_u]
        gx = w0 * (x @ (y.T @ y)) + self.user_reg[:, None] * x  # (n_users, d)
        gy = w0 * (y @ (x.T @ x)) + self.item_reg[:, None] * y  # (n_items, d)
        u, i = self.data.user, self.data.item
        for start in range(0, u.numel(), ROW_CHUNK):
            uc, ic = u[start : start + ROW_CHUNK], i[start : start + ROW_CHUNK]
            xu, yi = x[uc], y[ic]
            coef = ((c - w0) * (xu * yi).sum(-1) - c)[:, None]  # (n, 1)
            gx.index_add_(0, uc, coef * yi)
            gy.index_add_(0, ic, coef * xu)
        return 2 * gx.norm(dim=1), 2 * gy.norm(dim=1)

    @torch.no_grad()
    def row_curvatures(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        mf = self._mf(model)
        self._on(mf.user_emb.device)
        x, y, c, w0 = mf.user_emb.data, mf.item_emb.data, self.cfg.c, self.cfg.w0
        d = x.shape[1]
        # tr(H_u) / d = 2 [w0 tr(Y^T Y) + (c - w0) sum_{i in S_u} ||y_i||^2] / d + 2 lam_u
        sq_x, sq_y = x.pow(2).sum(1), y.pow(2).sum(1)  # (n_users,), (n_items,)
        cu = torch.full_like(sq_x, w0 * float(sq_y.sum()))
        ci = torch.full_like(sq_y, w0 * float(sq_x.sum()))
        cu.index_add_(0, self.data.user, (c - w0) * sq_y[self.data.item])
        ci.index_add_(0, self.data.item, (c - w0) * sq_x[self.data.user])
        return 2 * cu / d + 2 * self.user_reg, 2 * ci / d + 2 * self.item_reg


def _cholesky_rows(
    f: torch.Tensor, gram: torch.Tensor, lam: torch.Tensor, x_old: torch.Tensor, c: float, w0: float
) -> tuple[torch.Tensor, float, float]:
    """Exact row solves for long rows: form each (d x d) A_r and factor it."""
    d = f.shape[-1]
    eye = torch.eye(d, device=f.device, dtype=f.dtype)
    # A_r = w0 G + (c - w0) F_r^T F_r + lam_r I;  b_r = c * sum_j f_j
    a = gram + (c - w0) * (f.transpose(1, 2) @ f) + lam[:, None, None] * eye  # (B, d, d)
    b = c * f.sum(1)  # (B, d)
    chol, info = torch.linalg.cholesky_ex(a)
    if bool((info != 0).any()):  # numerically indefinite: damp those rows and retry
        bad = info != 0
        a[bad] += 1e-4 * a[bad].diagonal(dim1=1, dim2=2).mean(-1)[:, None, None] * eye
        chol = torch.linalg.cholesky(a)
    x_new = torch.cholesky_solve(b[..., None], chol)[..., 0]  # (B, d) = A^{-1} b
    # row objective up to a constant: q(x) = x^T A x - 2 b^T x; at the minimiser q = -b^T x
    q_old = float(((a @ x_old[..., None])[..., 0] * x_old).sum() - 2 * (b * x_old).sum())
    # exact decrease q(x_old) - q(x_new) = dx^T A dx: no cancellation between two large sums
    dx = x_old - x_new  # (B, d)
    decrease = float(((a @ dx[..., None])[..., 0] * dx).double().sum())
    return x_new, q_old, q_old - decrease


def _woodbury_rows(
    z: torch.Tensor,
    lam_g: torch.Tensor,
    lam: torch.Tensor,
    q: torch.Tensor,
    x_old: torch.Tensor,
    c: float,
    w0: float,
) -> tuple[torch.Tensor, float, float]:
    """Exact row solves for short rows (L < d) through the Woodbury identity, in G's eigenbasis.

    A_r = M_r + (c - w0) Z_r^T Z_r with M_r = diag(Lam + lam_r) (rotated), so
    A_r^{-1} = M_r^{-1} - M_r^{-1} Z_r^T (I / (c - w0) + Z_r M_r^{-1} Z_r^T)^{-1} Z_r M_r^{-1}:
    an (L x L) factorisation instead of a (d x d) one. Padded rows of Z are zero, which
    leaves them decoupled in the (L x L) system.
    """
    inv_m = 1.0 / (lam_g[None, :] + lam[:, None])  # (B, d) = diag(M_r^{-1})
    b = c * z.sum(1)  # (B, d) = c sum_j z_j, rotated b_r
    u = inv_m * b  # (B, d) = M^{-1} b
    if c == w0:  # observed cells weigh like the rest: A_r = M_r, no per-row correction
        x_rot = u
    else:
        zm = z * inv_m[:, None, :]  # (B, L, d) = Z M^{-1}
        k = zm @ z.transpose(1, 2)  # (B, L, L) = Z M^{-1} Z^T
        k.diagonal(dim1=1, dim2=2).add_(1.0 / (c - w0))
        chol = torch.linalg.cholesky(k)
        t = torch.cholesky_solve((z @ u[..., None]), chol)  # (B, L, 1) = K^{-1} Z M^{-1} b
        x_rot = u - (zm.transpose(1, 2) @ t)[..., 0]  # (B, d) = A^{-1} b, rotated
    x_old_rot = x_old @ q  # (B, d)
    # q(x) = x^T A x - 2 b^T x with x^T A x = x^T M x + (c - w0) ||Z x||^2 (rotated basis)
    quad = (x_old_rot.pow(2) / inv_m).sum() + (c - w0) * (z @ x_old_rot[..., None]).pow(2).sum()
    q_old = float(quad - 2 * (b * x_old_rot).sum())
    # exact decrease q(x_old) - q(x_new) = dx^T A dx: no cancellation between two large sums
    dx = x_old_rot - x_rot  # (B, d)
    dec = (dx.pow(2) / inv_m).double().sum() + (c - w0) * (z @ dx[..., None]).pow(2).double().sum()
    return x_rot @ q.T, q_old, q_old - float(dec)
