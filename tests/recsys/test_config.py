"""Project config files: the shipped one loads; a named file must exist and be valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from recsys.config import load_config


def test_shipped_config_loads_the_tuned_values() -> None:
    cfg = load_config()
    assert cfg.mf.dim == 64 and cfg.unlearn.step_tol == pytest.approx(1e-2)


def test_a_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_unknown_sections_are_named(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[mf]\ndim = 8\n\n[trian]\ntol = 1e-3\n")
    with pytest.raises(ValueError, match="trian"):
        load_config(p)
    p.write_text("[mf]\ndim = 8\n")
    assert load_config(p).mf.dim == 8
