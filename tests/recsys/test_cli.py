"""`eraser` end to end: bench --quick on a tiny ratings file, bench-table, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys.cli import main

REQUIRED = [
    "model", "scenario", "seed", "method", "budget", "seconds", "speedup", "fe20", "cg_fe",
    "mia_auc", "cg_mia", "hr20", "ndcg20", "ndcg20_retrain", "median_rank",
    "first_reach_cg015_seconds", "grad_norm",
]  # fmt: skip
METHODS = {"retrain", "retrain-seed2", "noop", "warm-adamw", "alteraser"}

SMALL_CONFIG = """
[mf]
dim = 4
[neumf]
gmf_dim = 4
mlp_dim = 4
mlp_layers = [8, 4]
[train]
max_epochs = 15
neumf_max_epochs = 3
[unlearn]
max_rounds = 3
"""


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    """40 users x 30 items, 12 ratings each with increasing timestamps (MovieLens CSV)."""
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(40):
        for k in range(12):
            lines.append(
                f"{u + 1},{(u * 7 + k * 11) % 30 + 1},{1 + (u + k) % 5}.0,{1000 + 10 * k + u}"
            )
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL_CONFIG)
    return path


@pytest.mark.slow
def test_bench_quick_end_to_end(
    ratings: Path, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["bench", "--quick", "--dataset", str(ratings), "--config", str(config)]
    assert main([*argv, "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    bench = json.loads((out / "bench.json").read_text())
    assert {"machine", "versions", "config", "rows"} <= set(bench)
    assert {"cpu", "cores", "torch_threads", "torch", "cuda"} <= set(bench["machine"])
    for row in bench["rows"]:
        missing = [k for k in REQUIRED if k not in row]
        assert not missing, (row["model"], row["scenario"], row["method"], missing)
    groups = {(r["model"], r["scenario"]) for r in bench["rows"]}
    assert groups == {(m, s) for m in ("mf", "neumf") for s in ("R", "U", "S")}
    for model, scenario in groups:
        methods = {
            r["method"] for r in bench["rows"] if (r["model"], r["scenario"]) == (model, scenario)
        }
        assert methods >= METHODS, (model, scenario, methods)
    keys = [(r["model"], r["scenario"], r["seed"], r["method"], r["budget"]) for r in bench["rows"]]
    assert len(keys) == len(set(keys))  # one row per (model, scenario, seed, method, budget)
    retrain = next(r for r in bench["rows"] if r["method"] == "retrain")
    assert retrain["cg_fe"] == 0.0 and retrain["speedup"] == 1.0
    assert any("emb_dist" in r for r in bench["rows"] if r["scenario"] == "U")
    s_rows = [r for r in bench["rows"] if r["scenario"] == "S" and r["method"] == "alteraser"]
    assert all(r["n_requests"] == 3 and "seconds_p95" in r for r in s_rows)
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "alteraser" in capsys.readouterr().out  # the table was printed

    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench-table:start -->\n<!-- bench-table:end -->\n")
    assert main(["bench-table", "--json", str(out / "bench.json"), "--readme", str(readme)]) == 0
    assert "| mf | R | alteraser |" in readme.read_text()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["bench", "--models", "mf,svd"], "svd"),
        (["bench", "--scenarios", "R,X"], "X"),
        (["bench", "--dataset", "/nonexistent/ratings.csv"], "/nonexistent/ratings.csv"),
        (["bench-table", "--json", "/nonexistent/bench.json"], "/nonexistent/bench.json"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, *(["--no-progress"] if argv[0] == "bench" else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_bench_table_without_readme_markers_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"rows": [], "config": {}, "machine": {}}))
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert main(["bench-table", "--json", str(bench), "--readme", str(readme)]) == 2
    assert "bench-table:start" in capsys.readouterr().err
