"""The summary table (text, Markdown, README region) and the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recsys.bench.plot import plot_bench
from recsys.bench.table import END, START, format_table, markdown_table, update_readme


def _bench() -> dict[str, Any]:
    rows = []
    for seed, alt_cg in ((0, 0.1), (1, 0.3)):
        base = {"model": "mf", "scenario": "R", "seed": seed, "hr20": 0.2, "ndcg20": 0.1,
                "ndcg20_retrain": 0.1, "fe20": 0.1, "mia_auc": 0.5, "cg_mia": 0.1}  # fmt: skip
        rows += [
            {**base, "method": "retrain", "budget": 12, "seconds": 10.0, "speedup": 1.0,
             "cg_fe": 0.0},
            {**base, "method": "noop", "budget": 0, "seconds": 0.0, "speedup": None, "cg_fe": 1.0},
            {**base, "method": "alteraser", "budget": 0, "seconds": 0.5, "speedup": 20.0,
             "cg_fe": 0.9},
            {**base, "method": "alteraser", "budget": 2, "seconds": 1.0, "speedup": 10.0,
             "cg_fe": alt_cg, "first_reach_cg015_seconds": 1.0 if alt_cg < 0.15 else None},
            {**base, "method": "warm-adamw", "lr": 0.01, "budget": 40, "seconds": 2.0,
             "speedup": 5.0, "cg_fe": 0.5},
            {**base, "method": "warm-adamw@lr=0.03", "lr": 0.03, "budget": 40, "seconds": 2.0,
             "speedup": 5.0, "cg_fe": 0.7},
        ]  # fmt: skip
    return {
        "machine": {"cpu": "test cpu", "cores": 2, "torch": "2.x", "device": "cpu"},
        "config": {"dataset": {"path": "data/x", "n_users": 3}, "bench": {"seeds": [0, 1]}},
        "rows": rows,
    }


def test_markdown_table_takes_last_budget_and_averages_seeds() -> None:
    md = markdown_table(_bench())
    lines = [ln for ln in md.splitlines() if ln.startswith("| mf")]
    methods = [ln.split("|")[3].strip() for ln in lines]
    assert methods == ["retrain", "noop", "warm-adamw", "alteraser"]  # sweep rows left out
    alt = lines[-1].split("|")
    assert alt[4].strip() == "2 rounds"
    assert alt[8].strip() == "0.2 ± 0.1"  # CG(FE) at the last round, mean ± std over 2 seeds
    assert "0.01" in lines[2]  # the best lr is named


def test_format_table_is_aligned_text() -> None:
    text = format_table(_bench())
    body = text.splitlines()[1:]
    assert body[0].split()[:3] == ["model", "scenario", "method"]
    assert set(body[1]) <= {"-", " "}
    assert any(ln.startswith("mf") and "alteraser" in ln for ln in body)


def test_update_readme_replaces_only_the_region(tmp_path: Path) -> None:
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(_bench()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{START}\nold numbers\n{END}\nafter\n")
    update_readme(readme, bench_json)
    text = readme.read_text()
    assert "old numbers" not in text
    assert text.startswith("# Title\n\nbefore\n" + START)
    assert text.endswith(END + "\nafter\n")
    assert "| mf | R | alteraser |" in text
    update_readme(readme, bench_json)  # idempotent
    assert readme.read_text() == text


def test_update_readme_without_markers_fails(tmp_path: Path) -> None:
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(_bench()))
    readme = tmp_path / "README.md"
    readme.write_text("# no region\n")
    with pytest.raises(ValueError, match="bench-table"):
        update_readme(readme, bench_json)


def test_plot_writes_png(tmp_path: Path) -> None:
    out = plot_bench(_bench(), tmp_path / "sub" / "bench.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
