"""Hyper-parameters of the models and the training objective, loaded from configs/*.toml."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "ml-latest-small.toml"


@dataclass(frozen=True)
class MFConfig:
    """Matrix factorisation trained with the iALS objective (Hu et al. 2008; Rendle et al. 2021).

    L = sum_{(u,i) in S} c * (1 - x_u.y_i)^2 + w0 * sum_{(u,i) not in S} (x_u.y_i)^2
        + sum_u lam_u ||x_u||^2 + sum_i lam_i ||y_i||^2,   lam_u = l2 * (|S_u| + w0 n_items)^nu
    """

    dim: int = 64
    l2: float = 1.0  # weight of the L2 penalty on every embedding row
    w0: float = 0.01  # weight of each unobserved (user, item) cell, target 0
    c: float = 1.0  # weight of each observed cell, target 1
    l2_exponent: float = 0.0  # frequency scaling: lam_u = l2 * (|S_u| + w0 * n_items)^exponent
    init_std: float = 0.1


@dataclass(frozen=True)
class NeuMFConfig:
    """NeuMF (He et al. 2017): GMF tower + MLP tower, trained with weighted BCE.

    L = sum_{(u,i) in S} BCE(f(u,i), 1) + neg_weight * sum_{(u,j) in N(S, seed)} BCE(f(u,j), 0)
        + l2 * ||theta||^2, with N a deterministic negative set (neg_ratio per positive).
    """

    gmf_dim: int = 16
    mlp_dim: int = 16
    mlp_layers: tuple[int, ...] = (32, 16, 8)
    l2: float = 1e-3
    neg_ratio: int = 4
    neg_weight: float = 1.0
    init_std: float = 0.1


@dataclass(frozen=True)
class TrainConfig:
    """When training (and retraining) stops: relative decrease of the objective per epoch."""

    tol: float = 1e-5
    max_epochs: int = 300
    # NeuMF's block rounds cost ~50x an MF epoch on CPU and its objective has a long flat
    # tail (ReLU kinks, scale trading between towers), so it gets its own stopping rule.
    neumf_tol: float = 1e-3
    neumf_max_epochs: int = 25

    def stopping(self, kind: str) -> tuple[float, int]:
        """(relative-decrease tolerance, epoch cap) for a model kind."""
        if kind == "neumf":
            return self.neumf_tol, self.neumf_max_epochs
        return self.tol, self.max_epochs


@dataclass(frozen=True)
class UnlearnConfig:
    """AltEraser's stopping rule and safeguards."""

    max_rounds: int = 30
    neumf_max_rounds: int = 10  # a NeuMF round costs about one training epoch on CPU
    tol: float = 1e-5  # stop when a round lowers the objective by less than this (relative)
    # after round 0 a row is re-solved only when its estimated Newton step
    # ||grad_r|| / curvature_r exceeds step_tol * (||row_r|| + 1e-8)
    step_tol: float = 1e-2
    damping: float = 1e-6  # added to each per-row Hessian's diagonal (relative to its trace/d)
    max_backtracks: int = 10  # per-row Armijo backtracking halvings
    affected_only_first: bool = True  # first solve only rows touching the deleted data


@dataclass(frozen=True)
class ProjectConfig:
    mf: MFConfig = field(default_factory=MFConfig)
    neumf: NeuMFConfig = field(default_factory=NeuMFConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    unlearn: UnlearnConfig = field(default_factory=UnlearnConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**kwargs)


def load_config(path: Path | str | None = None) -> ProjectConfig:
    """Read a project config TOML (sections [mf], [neumf], [train], [unlearn])."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.exists():
        if path is not None:  # a config named by the caller must exist; only ours is optional
            raise ValueError(f"{p}: no such config file")
        return ProjectConfig()
    raw = tomllib.loads(p.read_text())
    sections = {
        "mf": MFConfig,
        "neumf": NeuMFConfig,
        "train": TrainConfig,
        "unlearn": UnlearnConfig,
    }
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ValueError(f"{p}: unknown section(s) {unknown}; expected {sorted(sections)}")
    parts = {
        name: _build(cls, raw.get(name, {}), f"{p} [{name}]") for name, cls in sections.items()
    }
    return ProjectConfig(**parts)
