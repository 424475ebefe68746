"""The README quotes the committed service benchmark results exactly (regenerated tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.bench.readme import REGIONS, render, update

ROOT = Path(__file__).resolve().parents[3]


def test_readme_tables_match_the_committed_benchmark_outputs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert update(readme, ROOT / "benchmarks") == readme, (
        "README is out of date: run `python -m service.bench.readme --readme README.md`"
    )
    for name in REGIONS:
        assert render(name, ROOT / "benchmarks") in readme


def test_a_missing_region_is_named() -> None:
    with pytest.raises(ValueError, match="pipeline"):
        update("<!-- api-load:start -->\n<!-- api-load:end -->\n", ROOT / "benchmarks")
