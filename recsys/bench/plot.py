"""bench.png: CG(FE@20) against seconds for each method, one panel per (model, scenario).

Curves are averaged over seeds per budget. Retrain is a star (CG 0 by definition) with a
dashed vertical line at its cost; noop (zero cost, CG 1) is a dotted horizontal line.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in tests

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from recsys.bench.probe import CG_TARGET

STYLE = {
    "alteraser": {"color": "tab:red", "marker": "o", "lw": 2.0},
    "warm-adamw": {"color": "tab:blue", "marker": "s", "lw": 1.5},
    "retrain-seed2": {"color": "tab:gray", "marker": "D", "lw": 0.0},
}


def _finite(x: Any) -> bool:
    return x is not None and math.isfinite(float(x))


def _curve(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Seed-averaged (seconds, cg_fe) per budget, sorted by budget; non-finite points dropped."""
    by_budget: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if _finite(r.get("cg_fe")) and _finite(r.get("seconds")) and r["seconds"] > 0:
            by_budget[r["budget"]].append((r["seconds"], r["cg_fe"]))
    pts = [tuple(np.mean(v, axis=0)) for _, v in sorted(by_budget.items())]
    arr = np.array(pts, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def plot_bench(bench: dict[str, Any], path: Path | str) -> Path:
    rows = bench["rows"]
    panels = sorted({(r["model"], r["scenario"]) for r in rows})
    n = max(1, len(panels))
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
    for ax, (model, scenario) in zip(axes.flat, panels, strict=False):
        sub = [r for r in rows if r["model"] == model and r["scenario"] == scenario]
        methods = sorted({r["method"] for r in sub})
        for method in methods:
            if method in ("retrain", "noop"):
                continue
            x, y = _curve([r for r in sub if r["method"] == method])
            if x.size == 0:
                continue
            style = STYLE.get(
                method, {"color": "tab:blue", "marker": ".", "lw": 0.8, "alpha": 0.35}
            )
            label = method if method in STYLE else None  # sweep curves unlabelled, faint
            ax.plot(x, y, label=label, markersize=4, **style)
        ret = [r["seconds"] for r in sub if r["method"] == "retrain" and _finite(r.get("seconds"))]
        if ret:
            t = float(np.mean(ret))
            ax.axvline(t, color="black", ls="--", lw=1)
            ax.plot([t], [0.0], marker="*", color="black", markersize=12, ls="", label="retrain")
        ax.axhline(1.0, color="tab:orange", ls=":", lw=1.2, label="noop")
        ax.axhline(CG_TARGET, color="tab:green", ls="-.", lw=0.8, label=f"CG = {CG_TARGET}")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on short ranges
        ax.set_title(f"{model} / {scenario}")
        ax.set_xlabel("seconds (S: per request)" if scenario == "S" else "seconds")
        ax.set_ylabel("CG(FE@20)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
