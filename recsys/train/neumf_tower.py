"""Analytic derivatives of NeuMF's shared tower, for the block solvers.

The tower maps the fixed per-pair inputs xg = p_u * q_i (N, g) and x0 = [m_u, m_i] (N, 2m)
to the logit f = w_g . xg + w_h . a_L + b with a_k = relu(W_k a_{k-1} + b_k), a_0 = x0.
Its weights are handled as a flat list ``ts = [W_1, b_1, ..., W_L, b_L, w_out, b_out]``
(w_out = [w_g, w_h], shape (g + h,); b_out shape (1,)).

Written by hand rather than with torch.func because every solver needs the same few
products (per-pair input gradients, J v, J^T r, diag(J^T C J)) over ~10^5-10^7 pairs, and
the hand-written versions reuse one cached forward and never build per-pair weight
Jacobians.
"""

from __future__ import annotations

import torch

from recsys.models.neumf import NeuMF

Tower = list[torch.Tensor]


def tower_params(model: NeuMF) -> Tower:
    """Detached views of the tower's weights in the flat-list order above."""
    ts: Tower = []
    for lin in model.linears():
        ts += [lin.weight.detach(), lin.bias.detach()]
    return [*ts, model.out.weight.detach()[0], model.out.bias.detach()]


def set_tower_params(model: NeuMF, ts: Tower) -> None:
    """Write a flat-list tower back into the model's parameters (in place)."""
    params = [p for lin in model.linears() for p in (lin.weight, lin.bias)]
    with torch.no_grad():
        for p, t in zip(params, ts[:-2], strict=True):
            p.copy_(t)
        model.out.weight[0].copy_(ts[-2])
        model.out.bias.copy_(ts[-1])


def flatten(ts: Tower) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in ts])  # (P,)


def unflatten(vec: torch.Tensor, like: Tower) -> Tower:
    out, start = [], 0
    for t in like:
        out.append(vec[start : start + t.numel()].view_as(t))
        start += t.numel()
    return out


def _relu_grad(delta: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """delta * relu'(z) given a = relu(z): ReLU's own backward kernel, several times faster
    on CPU than masked_fill_ / torch.where with a comparison mask."""
    out: torch.Tensor = torch.ops.aten.threshold_backward(delta, act, 0.0)
    return out


def _layers(ts: Tower) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(ts[k], ts[k + 1]) for k in range(0, len(ts) - 2, 2)]


def forward(ts: Tower, xg: torch.Tensor, x0: torch.Tensor) -> tuple[torch.Tensor, Tower]:
    """Logits (N,) and the activations [a_0 = x0, a_1, ..., a_L] kept for the derivatives."""
    acts = [x0]
    for w, b in _layers(ts):
        acts.append(torch.addmm(b, acts[-1], w.T).relu_())  # (N, l_k): a_k = relu(W a + b)
    g = xg.shape[1]
    w_out = ts[-2]
    f = xg @ w_out[:g] + acts[-1] @ w_out[g:] + ts[-1]  # (N,): f = w_g.xg + w_h.a_L + b
    return f, acts


def _deltas(ts: Tower, acts: Tower, r: torch.Tensor) -> Tower:
    """Per-pair back-propagated signals d(r_n f_n)/dz_k for every layer, [delta_1..delta_L]."""
    g = ts[-2].numel() - acts[-1].shape[1]
    delta = _relu_grad(r[:, None] * ts[-2][g:], acts[-1])  # (N, l_L): w_h * relu'(z_L)
    out = [delta]
    layers = _layers(ts)
    for k in range(len(layers) - 1, 0, -1):
        delta = _relu_grad(delta @ layers[k][0], acts[k])  # (N, l_k): W^T delta * relu'(z_k)
        out.append(delta)
    return out[::-1]


def input_grad(ts: Tower, acts: Tower) -> torch.Tensor:
    """Per-pair df/dx0, (N, 2m): the MLP half of a row's Jacobian."""
    delta1 = _deltas(ts, acts, torch.ones_like(acts[0][:, 0]))[0]  # (N, l_1)
    return delta1 @ ts[0]  # (N, 2m): W_1^T delta_1


def jvp(ts: Tower, dts: Tower, xg: torch.Tensor, acts: Tower) -> torch.Tensor:
    """J v: the change of every logit along the weight direction ``dts``, (N,)."""
    da: torch.Tensor | None = None  # the inputs a_0 do not move
    for k, ((w, _), (dw, db)) in enumerate(zip(_layers(ts), _layers(dts), strict=True)):
        dz = torch.addmm(db, acts[k], dw.T)  # (N, l_k): dz_k = dW a_{k-1} + db ...
        if da is not None:
            dz.addmm_(da, w.T)  # ... + W da_{k-1}
        da = _relu_grad(dz, acts[k + 1])  # (N, l_k): da_k = relu'(z_k) dz_k
    assert da is not None
    g = xg.shape[1]
    w_out, dw_out = ts[-2], dts[-2]
    return xg @ dw_out[:g] + acts[-1] @ dw_out[g:] + da @ w_out[g:] + dts[-1]  # (N,)


def vjp(ts: Tower, r: torch.Tensor, xg: torch.Tensor, acts: Tower) -> Tower:
    """J^T r = sum_n r_n df_n/dts, in tower layout (the weight gradient for residuals r)."""
    deltas = _deltas(ts, acts, r)
    out: Tower = []
    for k, delta in enumerate(deltas):
        out += [delta.T @ acts[k], delta.sum(0)]  # (l_k, l_{k-1}), (l_k,)
    w_out = torch.cat([xg.T @ r, acts[-1].T @ r])  # (g + h,)
    return [*out, w_out, r.sum().reshape(1)]


def gn_diag(ts: Tower, c: torch.Tensor, xg: torch.Tensor, acts: Tower) -> Tower:
    """diag(J^T diag(c) J) in tower layout: the Jacobi preconditioner of the GN system."""
    deltas = _deltas(ts, acts, torch.ones_like(c))  # per-pair df/dz_k
    out: Tower = []
    for k, delta in enumerate(deltas):
        d2 = c[:, None] * delta**2  # (N, l_k)
        out += [d2.T @ acts[k] ** 2, d2.sum(0)]  # sum_n c (delta_i a_j)^2, sum_n c delta_i^2
    w_out = torch.cat([xg.T**2 @ c, (acts[-1].T ** 2) @ c])  # (g + h,)
    return [*out, w_out, c.sum().reshape(1)]
