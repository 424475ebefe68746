"""Factories: build a model or its training objective from a model kind and the config."""

from __future__ import annotations

import torch
from torch import nn

from recsys.config import ProjectConfig
from recsys.data.interactions import Interactions
from recsys.models.mf import MF
from recsys.train.blocks import BlockObjective

MODEL_KINDS = ("mf", "neumf")


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(MODEL_KINDS)}")


def make_model(kind: str, n_users: int, n_items: int, cfg: ProjectConfig, seed: int) -> nn.Module:
    """A freshly initialised model; the initialisation is a function of ``seed`` alone."""
    _check_kind(kind)
    gen = torch.Generator().manual_seed(seed)
    if kind == "mf":
        return MF(n_users, n_items, cfg.mf.dim, cfg.mf.init_std, generator=gen)
    from recsys.models.neumf import NeuMF

    return NeuMF(n_users, n_items, cfg.neumf, generator=gen)


def make_objective(kind: str, data: Interactions, cfg: ProjectConfig, seed: int) -> BlockObjective:
    """The training objective of ``kind`` on ``data``: a deterministic function of (data, seed)."""
    _check_kind(kind)
    if kind == "mf":
        from recsys.train.mf_objective import MFObjective

        return MFObjective(data, cfg.mf)  # no randomness: the all-items loss needs no negatives
    from recsys.train.neumf_objective import NeuMFObjective

    return NeuMFObjective(data, cfg.neumf, seed)


def model_config(kind: str, cfg: ProjectConfig) -> dict[str, object]:
    """The part of the config that defines the model's shape (stored in checkpoints)."""
    _check_kind(kind)
    from dataclasses import asdict

    return asdict(cfg.mf) if kind == "mf" else asdict(cfg.neumf)


def row_norms(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Norm of every user row and item row of a model's parameters: ((n_users,), (n_items,))."""
    from recsys.models.mf import MF

    with torch.no_grad():
        if isinstance(model, MF):
            return model.user_emb.norm(dim=1), model.item_emb.norm(dim=1)
        users = torch.cat([model.gmf_user, model.mlp_user], 1)  # type: ignore[list-item]
        items = torch.cat([model.gmf_item, model.mlp_item], 1)  # type: ignore[list-item]
        return users.norm(dim=1), items.norm(dim=1)
