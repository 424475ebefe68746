"""The hand-written tower derivatives against autograd / torch.func on a tiny model."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.autograd.functional import jacobian
from torch.autograd.functional import jvp as autograd_jvp

from recsys.config import NeuMFConfig
from recsys.models.neumf import NeuMF
from recsys.train import neumf_tower as tw

CFG = NeuMFConfig(gmf_dim=3, mlp_dim=2, mlp_layers=(5, 4, 3), init_std=0.7)


def _setup() -> tuple[NeuMF, tw.Tower, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    model = NeuMF(6, 8, CFG, generator=gen).double()
    with torch.no_grad():
        for lin in model.linears():  # non-zero biases so they are exercised too
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=gen, dtype=torch.float64))
    user = torch.randint(0, 6, (40,), generator=gen)
    item = torch.randint(0, 8, (40,), generator=gen)
    xg = (model.gmf_user[user] * model.gmf_item[item]).detach()
    x0 = torch.cat([model.mlp_user[user], model.mlp_item[item]], 1).detach()
    return model, tw.tower_params(model), user, item, xg, x0


def _flat_fn(
    ts: tw.Tower, xg: torch.Tensor, x0: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda vec: tw.forward(tw.unflatten(vec, ts), xg, x0)[0]


def test_forward_matches_model_and_roundtrips_params() -> None:
    model, ts, user, item, xg, x0 = _setup()
    f, acts = tw.forward(ts, xg, x0)
    torch.testing.assert_close(f, model.score(user, item).detach())
    assert [a.shape[1] for a in acts] == [4, 5, 4, 3]
    doubled = [2 * t for t in ts]
    tw.set_tower_params(model, doubled)
    for a, b in zip(tw.tower_params(model), doubled, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.equal(tw.flatten(tw.unflatten(tw.flatten(ts), ts)), tw.flatten(ts))


def test_vjp_jvp_diag_match_autodiff() -> None:
    _, ts, _, _, xg, x0 = _setup()
    f, acts = tw.forward(ts, xg, x0)
    flat = tw.flatten(ts)
    jac = jacobian(_flat_fn(ts, xg, x0), flat)  # (N, P)
    r = torch.randn(f.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(tw.flatten(tw.vjp(ts, r, xg, acts)), jac.T @ r)
    v = torch.randn(flat.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    _, jv_ref = autograd_jvp(_flat_fn(ts, xg, x0), flat, v)
    torch.testing.assert_close(tw.jvp(ts, tw.unflatten(v, ts), xg, acts), jv_ref)
    c = r.abs()
    diag_ref = torch.diagonal(jac.T @ (c[:, None] * jac))
    torch.testing.assert_close(tw.flatten(tw.gn_diag(ts, c, xg, acts)), diag_ref)


def test_input_grad_is_per_pair_jacobian() -> None:
    _, ts, _, _, xg, x0 = _setup()
    x0 = x0.clone().requires_grad_(True)
    f, acts = tw.forward(ts, xg, x0)
    (ref,) = torch.autograd.grad(f.sum(), x0)  # each f_n depends on its own x0_n only
    torch.testing.assert_close(tw.input_grad(ts, [a.detach() for a in acts]), ref)
