"""NeuMF: parameter shapes, seeded init, and score_users agreeing with score."""

from __future__ import annotations

import pytest
import torch

import recsys.models.neumf as neumf_module
from recsys.config import NeuMFConfig
from recsys.models.base import Recommender
from recsys.models.neumf import NeuMF

CFG = NeuMFConfig(gmf_dim=3, mlp_dim=4, mlp_layers=(6, 5), init_std=0.5)


def _model(seed: int = 0) -> NeuMF:
    return NeuMF(7, 11, CFG, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_protocol() -> None:
    model = _model()
    assert isinstance(model, Recommender)
    assert (model.n_users, model.n_items) == (7, 11)
    assert model.gmf_user.shape == (7, 3) and model.gmf_item.shape == (11, 3)
    assert model.mlp_user.shape == (7, 4) and model.mlp_item.shape == (11, 4)
    assert [(lin.in_features, lin.out_features) for lin in model.linears()] == [(8, 6), (6, 5)]
    assert (model.out.in_features, model.out.out_features) == (3 + 5, 1)
    users, items = torch.tensor([0, 6, 3]), torch.tensor([10, 0, 3])
    assert model.score(users, items).shape == (3,)
    assert model.score_users(users).shape == (3, 11)


def test_init_is_a_function_of_the_generator() -> None:
    a, b, c = _model(1), _model(1), _model(2)
    for (name, pa), pb, pc in zip(
        a.named_parameters(), b.parameters(), c.parameters(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if "bias" not in name:  # biases start at zero for every seed
            assert not torch.equal(pa, pc), name


def test_score_is_gmf_plus_mlp_tower() -> None:
    model = _model()
    u, i = torch.tensor([2]), torch.tensor([5])
    h = torch.cat([model.mlp_user[u], model.mlp_item[i]], 1)
    for lin in model.linears():
        h = torch.relu(lin(h))
    gmf = model.gmf_user[u] * model.gmf_item[i]
    expected = torch.cat([gmf, h], 1) @ model.out.weight[0] + model.out.bias
    torch.testing.assert_close(model.score(u, i), expected)


@pytest.mark.parametrize("chunk_floats", [1, 64, 1 << 22])
def test_score_users_matches_score(monkeypatch: pytest.MonkeyPatch, chunk_floats: int) -> None:
    # tiny budgets force one-item chunks and ragged last chunks
    monkeypatch.setattr(neumf_module, "_SCORE_CHUNK_FLOATS", chunk_floats)
    model = _model()
    users = torch.tensor([4, 0, 6])
    full = model.score_users(users)  # (3, 11)
    pairs_u = users.repeat_interleave(model.n_items)
    pairs_i = torch.arange(model.n_items).repeat(users.numel())
    expected = model.score(pairs_u, pairs_i).view(3, model.n_items)
    torch.testing.assert_close(full, expected, atol=1e-5, rtol=1e-5)
