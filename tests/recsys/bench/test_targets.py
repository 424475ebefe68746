from typing import Any

from recsys.bench.targets import target_lines


def _row(method: str, budget: int, seconds: float, cg: float, **kw: Any) -> dict[str, Any]:
    return {
        "model": "mf", "scenario": kw.pop("scenario", "R"), "seed": kw.pop("seed", 0),
        "method": method, "budget": budget, "seconds": seconds, "speedup": 10.0 / seconds,
        "cg_fe": cg, "cg_mia": cg, "ndcg20": 0.05, "ndcg20_retrain": 0.05,
        "retrain_seconds": 10.0, "first_reach_cg015_seconds": kw.pop("reach", None), **kw,
    }  # fmt: skip


def test_speedup_counts_first_round_meeting_every_bound() -> None:
    rows = [
        _row("alteraser", 0, 0.1, 0.5, reach=0.4),  # too early: CG 0.5
        _row("alteraser", 1, 0.4, 0.1, reach=0.4),  # first round within bounds: 25x
        _row("alteraser", 2, 1.0, 0.0, reach=0.4),
        _row("warm-adamw", 30, 3.0, 0.1, reach=3.0),
    ]
    lines = target_lines({"rows": rows})
    speed = next(line for line in lines if "speed-up" in line)
    assert "25x at round 1" in speed and speed.endswith("| no |")  # 25 < 50
    reach = next(line for line in lines if "sooner" in line)
    assert "AltEraser 0.4 s, warm-AdamW 3 s" in reach and reach.endswith("| yes |")  # 7.5x


def test_ndcg_outside_two_percent_fails_the_bound() -> None:
    rows = [_row("alteraser", 0, 0.1, 0.0, ndcg20=0.04)]  # 20% below retrain's 0.05
    speed = next(line for line in target_lines({"rows": rows}) if "speed-up" in line)
    assert "seeds meeting bounds: 0/1" in speed and speed.endswith("| no |")


def test_single_request_share_of_retrain() -> None:
    rows = [_row("alteraser", 3, 0.05, 0.0, scenario="S")]
    line = next(line for line in target_lines({"rows": rows}) if "| S |" in line)
    assert "0.5%" in line and line.endswith("| yes |")


def test_scale_line_reports_share_and_peak_memory() -> None:
    rows = [_row("alteraser", 0, 0.05, 0.0, scenario="scale", peak_rss_mb=9 * 1024)]
    line = next(line for line in target_lines({"rows": rows}) if "| scale |" in line)
    assert "round 0: 0.5%" in line and "peak RSS 9.00 GB" in line
    assert line.endswith("| no |")  # fast enough, but over the 8 GB memory bound
