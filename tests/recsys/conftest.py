"""Small datasets shared by the ML-core tests."""

from __future__ import annotations

import pytest
import torch

from recsys.config import MFConfig, ProjectConfig, TrainConfig, UnlearnConfig
from recsys.data.interactions import Interactions
from recsys.models.mf import MF


def planted_blocks(seed: int = 0) -> Interactions:
    """Two taste clusters: users 0-19 like items 0-29, users 20-39 like items 30-59.

    Each user has 12 in-cluster items; user 0 additionally has items 30-35 (the other
    cluster) that tests delete: a retrain ranks them low for user 0, a model that still
    remembers them ranks them high.
    """
    g = torch.Generator().manual_seed(seed)
    users, items = [], []
    for u in range(40):
        base = 0 if u < 20 else 30
        for i in (torch.randperm(30, generator=g)[:12] + base).tolist():
            users.append(u)
            items.append(i)
    for i in range(30, 36):
        users.append(0)
        items.append(i)
    return Interactions.from_pairs(torch.tensor(users), torch.tensor(items), 40, 60)


def random_interactions(n_users: int, n_items: int, n: int, seed: int) -> Interactions:
    """Unique random pairs with a skewed item popularity; every user has >= 1 row."""
    g = torch.Generator().manual_seed(seed)
    u = torch.cat([torch.arange(n_users), torch.randint(0, n_users, (n,), generator=g)])
    i = (torch.rand(n + n_users, generator=g).pow(2) * n_items).long().clamp(max=n_items - 1)
    keys = torch.unique(u * n_items + i)
    return Interactions.from_pairs(keys // n_items, keys % n_items, n_users, n_items)


@pytest.fixture
def small_cfg() -> ProjectConfig:
    return ProjectConfig(
        mf=MFConfig(dim=8, l2=0.1, w0=0.05, c=1.0, init_std=0.1),
        train=TrainConfig(tol=1e-7, max_epochs=300),
        unlearn=UnlearnConfig(max_rounds=50, tol=1e-6, step_tol=1e-3),
    )


def as_mf(model: torch.nn.Module) -> MF:
    assert isinstance(model, MF)
    return model
