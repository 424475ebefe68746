import torch

from recsys.config import ProjectConfig
from recsys.train.objectives import make_model, make_objective
from recsys.train.trainer import train
from tests.recsys.conftest import as_mf, random_interactions


def test_training_is_deterministic_and_converges(small_cfg: ProjectConfig) -> None:
    data = random_interactions(30, 40, 300, seed=0)
    a = train("mf", data, small_cfg, seed=3)
    b = train("mf", data, small_cfg, seed=3)
    assert a.converged and a.epochs < small_cfg.train.max_epochs
    assert a.losses == b.losses
    assert torch.equal(as_mf(a.model).user_emb, as_mf(b.model).user_emb)
    # the loss decreases monotonically (exact block minimisation never goes up)
    assert all(x >= y - 1e-4 for x, y in zip(a.losses, a.losses[1:], strict=False))
    init = make_model("mf", 30, 40, small_cfg, 3)
    init_loss = float(make_objective("mf", data, small_cfg, 3).loss(init).detach())
    assert a.losses[-1] < 0.5 * init_loss
    assert a.grad_norm < 1e-2


def test_other_seed_gives_other_init_same_objective(small_cfg: ProjectConfig) -> None:
    data = random_interactions(30, 40, 300, seed=0)
    a = make_model("mf", 30, 40, small_cfg, 1)
    b = make_model("mf", 30, 40, small_cfg, 2)
    assert not torch.equal(as_mf(a).user_emb, as_mf(b).user_emb)
    oa = make_objective("mf", data, small_cfg, 1)
    ob = make_objective("mf", data, small_cfg, 2)
    assert float(oa.loss(a)) == float(ob.loss(a))  # MF's objective has no randomness
