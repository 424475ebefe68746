"""NeuMF's training objective and its block-wise (damped Newton) solvers.

L(theta) = sum_{(u,i) in S} BCE(f(u,i), 1) + neg_weight * sum_{(u,j) in N} BCE(f(u,j), 0)
           + l2 * ||theta||^2   (every embedding row, data or not, and every tower weight)

N = negative_pairs(S, neg_ratio, seed) is a deterministic function of the data, so the
objective is too: a retrain on the remaining data and AltEraser minimise the same thing.

Block steps use the Gauss-Newton Hessian H = sum_n w_n s_n (1 - s_n) J_n J_n^T + 2 l2 I
(s = sigmoid(f), J = df/dparams). For an embedding row it is the exact Hessian almost
everywhere: f is linear in p_u and piecewise linear in m_u (ReLU tower), so d2f = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recsys.config import NeuMFConfig
from recsys.data.interactions import Interactions
from recsys.models.neumf import NeuMF
from recsys.train import neumf_tower as tw
from recsys.train.blocks import BlockStats
from recsys.train.negatives import negative_pairs
from recsys.train.row_newton import armijo_rows, newton_step, segment_gram, shrink_step

_ARMIJO_C = 1e-4  # sufficient-decrease constant of every line search
Pass = tuple[torch.Tensor, tw.Tower]  # a chunk's logits (C,) and tower activations


class PairTable(NamedTuple):
    """Every pair of the objective on the CPU: positives first, then their negatives."""

    user: torch.Tensor  # (M,) int64
    item: torch.Tensor  # (M,) int64
    target: torch.Tensor  # (M,) float32: 1 for positives, 0 for negatives
    weight: torch.Tensor  # (M,) float32: 1 for positives, neg_weight for negatives


@dataclass
class _Pairs:
    """Positives and negatives on one device/dtype, with CSR indexes by user and by item."""

    user: torch.Tensor  # (M,) int64
    item: torch.Tensor  # (M,) int64
    target: torch.Tensor  # (M,) 1 for positives, 0 for negatives
    weight: torch.Tensor  # (M,) 1 for positives, neg_weight for negatives
    by_user: tuple[torch.Tensor, torch.Tensor]  # (order (M,), offsets (n_users + 1,))
    by_item: tuple[torch.Tensor, torch.Tensor]  # (order (M,), offsets (n_items + 1,))


def _csr(key: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.argsort(key, stable=True)  # (M,)
    offsets = torch.zeros(n + 1, dtype=torch.int64, device=key.device)
    offsets[1:] = torch.cumsum(torch.bincount(key, minlength=n), 0)
    return order, offsets


def _bce(f: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return w * F.binary_cross_entropy_with_logits(f, t, reduction="none")  # (N,)


class NeuMFObjective:
    """The BlockObjective of NeuMF (see recsys.train.blocks)."""

    def __init__(
        self,
        data: Interactions,
        cfg: NeuMFConfig,
        seed: int,
        *,
        damping: float = 1e-6,
        max_backtracks: int = 10,
        chunk_size: int = 1 << 17,
        cg_iters: int = 10,
        cg_tol: float = 1e-4,
        cache_floats: int = 1 << 26,
    ) -> None:
        self.data = data
        self.cfg = cfg
        self.seed = seed
        self.damping = damping  # relative to trace(H)/dim, added to every Hessian's diagonal
        self.max_backtracks = max_backtracks
        self.chunk_size = chunk_size  # pairs per chunk: bounds every intermediate's memory
        self.cg_iters = cg_iters  # network step: max preconditioned-CG iterations ...
        self.cg_tol = cg_tol  # ... and relative residual at which CG stops
        self.cache_floats = cache_floats  # network step keeps activations up to this size
        self.negatives = negative_pairs(data, cfg.neg_ratio, seed)
        n_pos, n_neg = len(data), len(self.negatives)
        self.pairs = PairTable(
            user=torch.cat([data.user, self.negatives.user]),
            item=torch.cat([data.item, self.negatives.item]),
            target=torch.cat([torch.ones(n_pos), torch.zeros(n_neg)]),
            weight=torch.cat([torch.ones(n_pos), torch.full((n_neg,), cfg.neg_weight)]),
        )
        self._cache: dict[tuple[torch.device, torch.dtype], _Pairs] = {}

    # ----------------------------------------------------------------- data on device
    def _pairs(self, model: NeuMF) -> _Pairs:
        ref = model.gmf_user
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            user, item, target, weight = (t.to(ref.device) for t in self.pairs)
            self._cache[key] = _Pairs(
                user=user,
                item=item,
                target=target.to(ref.dtype),
                weight=weight.to(ref.dtype),
                by_user=_csr(user, self.data.n_users),
                by_item=_csr(item, self.data.n_items),
            )
        return self._cache[key]

    def _chunks(self, n: int) -> list[slice]:
        return [slice(s, min(s + self.chunk_size, n)) for s in range(0, n, self.chunk_size)]

    @staticmethod
    def _inputs(
        model: NeuMF, user: torch.Tensor, item: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tower's fixed inputs for some pairs: xg = p_u * q_i (N, g), x0 = [m_u, m_i]."""
        xg = model.gmf_user[user] * model.gmf_item[item]  # (N, g)
        x0 = torch.cat([model.mlp_user[user], model.mlp_item[item]], 1)  # (N, 2m)
        return xg.detach(), x0.detach()

    def _l2_embeddings(self, model: NeuMF) -> torch.Tensor:
        embs = (model.gmf_user, model.gmf_item, model.mlp_user, model.mlp_item)
        return torch.stack([(e.detach() ** 2).sum() for e in embs]).sum()

    # ----------------------------------------------------------------- full objective
    def loss(self, model: nn.Module) -> torch.Tensor:
        """The full objective as a differentiable scalar: one batched forward over all pairs."""
        model = _neumf(model)
        p = self._pairs(model)
        f = model.score(p.user, p.item)  # (M,)
        data = F.binary_cross_entropy_with_logits(f, p.target, weight=p.weight, reduction="sum")
        return data + self.cfg.l2 * sum((q**2).sum() for q in model.parameters())

    @torch.no_grad()
    def value(self, model: NeuMF, ts: tw.Tower | None = None) -> float:
        """The full objective as a float, in bounded chunks; ``ts`` substitutes tower weights."""
        p = self._pairs(model)
        ts = tw.tower_params(model) if ts is None else ts
        total = self.cfg.l2 * (self._l2_embeddings(model) + sum((t**2).sum() for t in ts))
        for sl in self._chunks(p.user.numel()):
            f, _ = tw.forward(ts, *self._inputs(model, p.user[sl], p.item[sl]))  # (C,)
            total = total + _bce(f, p.target[sl], p.weight[sl]).sum()
        return float(total)

    def _row_jacobians(
        self, model: NeuMF
    ) -> Iterator[
        tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    ]:
        """Per chunk of pairs: (sl, user, item, logit, J_user, J_item), J the logit's gradient
        with respect to the pair's user row and item row ([gmf, mlp] concatenated), (C, D)."""
        p = self._pairs(model)
        ts = tw.tower_params(model)
        g, m = model.gmf_dim, model.mlp_dim
        w_gmf = ts[-2][:g]  # (g,)
        for sl in self._chunks(p.user.numel()):
            u, i = p.user[sl], p.item[sl]
            f, acts = tw.forward(ts, *self._inputs(model, u, i))  # (C,)
            dx0 = tw.input_grad(ts, acts)  # (C, 2m)
            ju = torch.cat([w_gmf * model.gmf_item[i], dx0[:, :m]], 1)  # (C, D)
            ji = torch.cat([w_gmf * model.gmf_user[u], dx0[:, m:]], 1)  # (C, D)
            yield sl, u, i, f, ju, ji

    @torch.no_grad()
    def row_grad_norms(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """||dL/d row|| for every user row and item row ([gmf, mlp] concatenated)."""
        model = _neumf(model)
        p = self._pairs(model)
        l2 = self.cfg.l2
        gu = 2 * l2 * torch.cat([model.gmf_user, model.mlp_user], 1)  # (U, D)
        gi = 2 * l2 * torch.cat([model.gmf_item, model.mlp_item], 1)  # (I, D)
        for sl, u, i, f, ju, ji in self._row_jacobians(model):
            r = p.weight[sl] * (torch.sigmoid(f) - p.target[sl])  # (C,): dBCE/df
            gu.index_add_(0, u, r[:, None] * ju)
            gi.index_add_(0, i, r[:, None] * ji)
        return gu.norm(dim=1), gi.norm(dim=1)

    @torch.no_grad()
    def row_curvatures(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """tr(H_r) / D per row, H_r the Gauss-Newton Hessian sum w s(1-s) J J^T + 2 l2 I."""
        model = _neumf(model)
        p = self._pairs(model)
        dim = model.gmf_dim + model.mlp_dim
        hu = torch.zeros(model.n_users, device=p.user.device, dtype=model.gmf_user.dtype)
        hi = torch.zeros(model.n_items, device=p.user.device, dtype=model.gmf_user.dtype)
        for sl, u, i, f, ju, ji in self._row_jacobians(model):
            s = torch.sigmoid(f)
            c = p.weight[sl] * s * (1 - s)  # (C,): d2 BCE / df2
            hu.index_add_(0, u, c * ju.pow(2).sum(1))
            hi.index_add_(0, i, c * ji.pow(2).sum(1))
        return hu / dim + 2 * self.cfg.l2, hi / dim + 2 * self.cfg.l2

    # ----------------------------------------------------------------- row blocks
    def solve_users(self, model: nn.Module, users: torch.Tensor) -> BlockStats:
        return self._solve_rows(_neumf(model), users, "user")

    def solve_items(self, model: nn.Module, items: torch.Tensor) -> BlockStats:
        return self._solve_rows(_neumf(model), items, "item")

    def _solve_rows(self, model: NeuMF, rows: torch.Tensor, side: str) -> BlockStats:
        """One damped, line-searched Newton step on every given row; rows are independent
        (each pair touches one user row and one item row), so groups of rows whose pairs fit
        in a chunk are solved one after the other and the objective is a sum over rows."""
        p = self._pairs(model)
        rows = torch.unique(rows.to(device=p.user.device, dtype=torch.int64))  # (R,)
        order, offsets = p.by_user if side == "user" else p.by_item
        counts = offsets[rows + 1] - offsets[rows]  # (R,) pairs per row
        stats = BlockStats(rows=int(rows.numel()), loss_before=0.0, loss_after=0.0)
        ends = torch.cumsum(counts, 0).tolist()
        start, done = 0, 0
        while start < len(ends):
            # the longest run of rows whose pairs fit in one chunk (at least one row)
            stop = start + 1
            while stop < len(ends) and ends[stop] - done <= self.chunk_size:
                stop += 1
            sl = slice(start, stop)
            self._solve_group(model, p, side, rows[sl], counts[sl], order, offsets, stats)
            start, done = stop, ends[stop - 1]
        return stats

    def _solve_group(
        self,
        model: NeuMF,
        p: _Pairs,
        side: str,
        rows: torch.Tensor,
        counts: torch.Tensor,
        order: torch.Tensor,
        offsets: torch.Tensor,
        stats: BlockStats,
    ) -> None:
        n_rows, n = rows.numel(), int(counts.sum())
        local = torch.repeat_interleave(torch.arange(n_rows, device=rows.device), counts)  # (n,)
        first = torch.cumsum(counts, 0) - counts  # (R,) where each row's pairs start
        pos = torch.arange(n, device=rows.device) - first[local]  # (n,) rank inside its row
        idx = order[offsets[rows][local] + pos]  # (n,) pair ids, grouped by row
        t, w = p.target[idx], p.weight[idx]  # (n,)
        user_side = side == "user"
        own_g, own_m = (
            (model.gmf_user, model.mlp_user) if user_side else (model.gmf_item, model.mlp_item)
        )
        other = p.item[idx] if user_side else p.user[idx]  # (n,)
        oth_g = (model.gmf_item if user_side else model.gmf_user).detach()[other]  # (n, g)
        oth_m = (model.mlp_item if user_side else model.mlp_user).detach()[other]  # (n, m)
        ts = tw.tower_params(model)
        g, m, l2 = model.gmf_dim, model.mlp_dim, self.cfg.l2
        w_gmf = ts[-2][:g]  # (g,)

        def forward(theta_pairs: torch.Tensor, sel: torch.Tensor | slice) -> Pass:
            """Logits and tower activations of the pairs ``sel`` with own rows theta_pairs."""
            own_gmf, own_mlp = theta_pairs[:, :g], theta_pairs[:, g:]  # (k, g), (k, m)
            mlp_pair = (own_mlp, oth_m[sel]) if user_side else (oth_m[sel], own_mlp)
            return tw.forward(ts, own_gmf * oth_g[sel], torch.cat(mlp_pair, 1))

        def row_losses(theta: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
            """Each active row's own objective: its pairs' BCE + l2 ||row||^2, (R_active,)."""
            rows_a = torch.nonzero(active).squeeze(1)  # (Ra,)
            slot = torch.full((n_rows,), -1, dtype=torch.int64, device=rows.device)
            slot[rows_a] = torch.arange(rows_a.numel(), device=rows.device)
            sel = torch.nonzero(active[local]).squeeze(1)  # (k,) pairs of active rows
            f, _ = forward(theta[local[sel]], sel)  # (k,)
            out = l2 * (theta[rows_a] ** 2).sum(1)  # (Ra,)
            return out.index_add_(0, slot[local[sel]], _bce(f, t[sel], w[sel]))

        with torch.no_grad():
            theta = torch.cat([own_g[rows], own_m[rows]], 1)  # (R, D) with D = g + m
            f, acts = forward(theta[local], slice(None))  # (n,)
            s = torch.sigmoid(f)  # (n,)
            dx0 = tw.input_grad(ts, acts)  # (n, 2m)
            jac = torch.cat([w_gmf * oth_g, dx0[:, :m] if user_side else dx0[:, m:]], 1)  # (n, D)
            # L_r = sum_n w BCE + l2 ||theta_r||^2
            loss0 = (l2 * (theta**2).sum(1)).index_add_(0, local, _bce(f, t, w))  # (R,)
            # g_r = sum_n w (s - t) J_n + 2 l2 theta_r
            grad = (2 * l2 * theta).index_add_(0, local, (w * (s - t))[:, None] * jac)  # (R, D)
            # H_r = sum_n w s (1 - s) J_n J_n^T + 2 l2 I   (Gauss-Newton = exact a.e.)
            curv = (w * s * (1 - s)).clamp_min(0).sqrt()  # (n,)
            hess = segment_gram(curv[:, None] * jac, local, counts)  # (R, D, D)
            hess.diagonal(dim1=1, dim2=2).add_(2 * l2)
            step = newton_step(hess, grad, self.damping)  # (R, D): -(H + lam I)^-1 g
            theta_new, loss1, backtracks = armijo_rows(
                row_losses, theta, step, grad, loss0, _ARMIJO_C, self.max_backtracks
            )
            own_g[rows] = theta_new[:, :g]
            own_m[rows] = theta_new[:, g:]
        stats.loss_before += float(loss0.sum())
        stats.loss_after += float(loss1.sum())
        stats.backtracks += backtracks

    # ----------------------------------------------------------------- network block
    @torch.no_grad()
    def solve_network(self, model: nn.Module) -> BlockStats:
        """One damped Gauss-Newton step on the tower (MLP + output weights), solved by
        Jacobi-preconditioned CG with matrix-free J v / J^T r products, then Armijo.
        The tower is one sub-problem: BlockStats.rows is 1, its losses the full objective."""
        model = _neumf(model)
        p = self._pairs(model)
        ts = tw.tower_params(model)
        l2, chunks = self.cfg.l2, self._chunks(p.user.numel())
        # The embeddings are fixed in this block, so the tower's inputs and (at the current
        # weights) its activations are too: keep them across the CG passes when they fit.
        per_pair = 1 + model.gmf_dim + sum(t.shape[0] for t in ts[:-2:2]) + 2 * model.mlp_dim
        cache = p.user.numel() * per_pair <= self.cache_floats
        inputs = [self._inputs(model, p.user[sl], p.item[sl]) for sl in chunks] if cache else []

        def forward_all(weights: tw.Tower) -> Iterator[tuple[slice, torch.Tensor, Pass]]:
            for k, sl in enumerate(chunks):
                xg, x0 = inputs[k] if cache else self._inputs(model, p.user[sl], p.item[sl])
                yield sl, xg, tw.forward(weights, xg, x0)

        at_ts = list(forward_all(ts)) if cache else None

        def current() -> Iterable[tuple[slice, torch.Tensor, Pass]]:
            return at_ts if at_ts is not None else forward_all(ts)

        l2_emb = self.cfg.l2 * float(self._l2_embeddings(model))

        def value(weights: tw.Tower, passes: Iterable[tuple[slice, torch.Tensor, Pass]]) -> float:
            total = l2_emb + l2 * float(sum((t**2).sum() for t in weights))
            for sl, _, (f, _) in passes:
                total += float(_bce(f, p.target[sl], p.weight[sl]).sum())
            return total

        grad = [2 * l2 * t for t in ts]  # dL/dts, starting from the L2 term
        diag = [torch.full_like(t, 2 * l2) for t in ts]  # diag of the GN matrix
        for sl, xg, (f, acts) in current():
            s = torch.sigmoid(f)  # (C,)
            w, t = p.weight[sl], p.target[sl]
            for acc, part in zip(grad, tw.vjp(ts, w * (s - t), xg, acts), strict=True):
                acc += part  # g = J^T (w (s - t)) + 2 l2 ts
            for acc, part in zip(diag, tw.gn_diag(ts, w * s * (1 - s), xg, acts), strict=True):
                acc += part  # diag(J^T diag(w s (1 - s)) J) + 2 l2
        g_vec, d_vec = tw.flatten(grad), tw.flatten(diag)  # (P,), (P,)
        lam = self.damping * float(d_vec.sum()) / d_vec.numel()  # relative to trace(G)/P

        def gn_matvec(v: torch.Tensor) -> torch.Tensor:
            """(G + lam I) v with G = J^T diag(w s (1 - s)) J + 2 l2 I, one pass over pairs."""
            dts = tw.unflatten(v, ts)
            out = [(2 * l2 + lam) * d for d in dts]
            for sl, xg, (f, acts) in current():
                s = torch.sigmoid(f)  # (C,)
                jv = tw.jvp(ts, dts, xg, acts)  # (C,)
                curv_jv = p.weight[sl] * s * (1 - s) * jv  # (C,): diag(w s (1 - s)) J v
                for o, part in zip(out, tw.vjp(ts, curv_jv, xg, acts), strict=True):
                    o += part  # J^T diag(w s (1 - s)) J v
            return tw.flatten(out)  # (P,)

        step = _pcg(gn_matvec, -g_vec, d_vec + lam, self.cg_iters, self.cg_tol)  # (P,)
        loss0 = value(ts, current())
        slope = float(g_vec @ step)
        alpha, loss1, backtracks = torch.tensor(1.0, dtype=g_vec.dtype), loss0, 0
        for attempt in range(self.max_backtracks + 1):
            trial = tw.unflatten(tw.flatten(ts) + alpha * step, ts)
            loss_trial = value(trial, forward_all(trial))
            # Armijo: L(ts + a d) <= L(ts) + c a g.d
            if loss_trial <= loss0 + _ARMIJO_C * float(alpha) * slope:
                tw.set_tower_params(model, trial)
                loss1 = loss_trial
                break
            if attempt < self.max_backtracks:
                alpha = shrink_step(alpha, *(torch.tensor(x) for x in (slope, loss0, loss_trial)))
                backtracks += 1
        return BlockStats(rows=1, loss_before=loss0, loss_after=loss1, backtracks=backtracks)


def _pcg(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    precond: torch.Tensor,
    iters: int,
    tol: float,
) -> torch.Tensor:
    """Preconditioned CG for A x = b from x = 0 (A SPD, diagonal preconditioner); stopped
    early it still gives a descent direction, which is all the line search needs."""
    x = torch.zeros_like(b)
    r = b.clone()
    z = r / precond
    d = z.clone()
    rz = float(r @ z)
    b_norm = float(b.norm())
    for _ in range(iters):
        if float(r.norm()) <= tol * b_norm:
            break
        ad = matvec(d)  # (P,)
        a = rz / float(d @ ad)  # step along d: a = r.z / d.A d
        x += a * d
        r -= a * ad
        z = r / precond
        rz_new = float(r @ z)
        d = z + (rz_new / rz) * d  # conjugate direction: d = z + beta d
        rz = rz_new
    return x


def _neumf(model: nn.Module) -> NeuMF:
    if not isinstance(model, NeuMF):
        raise TypeError(f"NeuMFObjective needs a NeuMF model, got {type(model).__name__}")
    return model
