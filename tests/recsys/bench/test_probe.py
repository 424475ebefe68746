"""The per-group ratios: consistency gaps, speed-up, first reach, best warm-adamw lr."""

from __future__ import annotations

import math

import pytest

from recsys.bench.probe import finalize_group


def _row(method: str, budget: int, seconds: float, fe: float, auc: float, **kw: float) -> dict:
    return {"method": method, "budget": budget, "seconds": seconds, "fe20": fe, "mia_auc": auc,
            "hr20": 0.1, "ndcg20": 0.05 if method != "retrain" else 0.06, **kw}  # fmt: skip


def test_finalize_group_fills_ratios_and_picks_best_lr() -> None:
    rows = [
        _row("retrain", 10, 8.0, 0.10, 0.50),
        _row("noop", 0, 0.0, 0.50, 0.70),
        _row("alteraser", 0, 0.5, 0.30, 0.60),
        _row("alteraser", 1, 1.0, 0.12, 0.52),
        _row("warm-adamw", 20, 2.0, 0.40, 0.65, lr=0.01),
        _row("warm-adamw", 40, 4.0, 0.30, 0.62, lr=0.01),
        _row("warm-adamw", 20, 2.0, 0.15, 0.55, lr=0.03),
        _row("warm-adamw", 40, 4.0, 0.11, 0.51, lr=0.03),
    ]
    finalize_group(rows)
    alt0, alt1 = rows[2], rows[3]
    assert alt0["cg_fe"] == pytest.approx(0.5) and alt0["cg_mia"] == pytest.approx(0.5)
    assert alt1["speedup"] == pytest.approx(8.0)
    assert alt0["first_reach_cg015_seconds"] == 1.0  # cg_fe 0.05 at 1 s
    assert rows[0]["cg_fe"] == 0.0 and rows[0]["first_reach_cg015_seconds"] == 8.0
    assert rows[1]["cg_fe"] == 1.0 and rows[1]["speedup"] is None
    assert rows[1]["first_reach_cg015_seconds"] is None
    assert all(r["ndcg20_retrain"] == 0.06 for r in rows)
    # lr 0.03 reaches CG <= 0.15 (0.125 at 2 s); lr 0.01 never does
    assert [r["method"] for r in rows[4:]] == ["warm-adamw@lr=0.01"] * 2 + ["warm-adamw"] * 2
    assert [r["best_lr"] for r in rows[4:]] == [False, False, True, True]


def test_finalize_group_nan_metric_never_counts_as_reached() -> None:
    rows = [
        _row("retrain", 3, 1.0, math.nan, 0.5),
        _row("noop", 0, 0.0, math.nan, 0.6),
        _row("alteraser", 1, 0.1, math.nan, 0.5),
    ]
    finalize_group(rows)
    assert math.isnan(rows[2]["cg_fe"])
    assert rows[2]["first_reach_cg015_seconds"] is None
