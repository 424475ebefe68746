"""The benchmark's summary table, as text (stdout) and as Markdown (the README's region).

One line per (model, scenario, method), taken at the end of each method's curve (last
budget) and averaged over seeds (mean ± std when there are several). The warm-adamw
line is its best learning rate's curve; the other rates stay in bench.json only.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
METHODS = ("retrain", "retrain-seed2", "noop", "warm-adamw", "alteraser")
HEADERS = [
    "model", "scenario", "method", "budget", "seconds", "speed-up", "FE@20", "CG(FE)",
    "MIA AUC", "CG(MIA)", "NDCG@20", "NDCG@20 retrain", "s to CG(FE)<=0.15",
]  # fmt: skip
_UNIT = {
    "retrain": "epochs",
    "retrain-seed2": "epochs",
    "noop": "",
    "warm-adamw": "steps",
    "alteraser": "rounds",
}


def _num(values: list[Any]) -> str:
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return "-"
    mean = float(np.mean(xs))
    text = f"{mean:.3g}"
    if len(set(xs)) > 1:  # identical values (e.g. a fixed budget) need no spread
        text += f" ± {float(np.std(xs)):.2g}"
    return text


def _last_rows(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(model, scenario, method) -> the last-budget row of each seed's curve."""
    last: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    for r in rows:
        if r["method"] not in METHODS:
            continue
        key = (r["model"], r["scenario"], r["method"], r["seed"])
        if key not in last or r["budget"] >= last[key]["budget"]:
            last[key] = r
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for (model, scenario, method, _), r in last.items():
        groups[(model, scenario, method)].append(r)
    return groups


def table_rows(bench: dict[str, Any]) -> list[list[str]]:
    groups = _last_rows(bench["rows"])
    order = {m: i for i, m in enumerate(METHODS)}
    out = []
    for model, scenario, method in sorted(groups, key=lambda k: (k[0], k[1], order[k[2]])):
        g = groups[(model, scenario, method)]
        budget = f"{_num([r['budget'] for r in g])} {_UNIT[method]}".strip()
        lrs = sorted({r["lr"] for r in g if r.get("lr") is not None})
        if lrs:
            budget += " @ lr " + "/".join(f"{lr:g}" for lr in lrs)
        out.append(
            [model, scenario, method, budget]
            + [_num([r.get(key) for r in g]) for key in ("seconds", "speedup", "fe20", "cg_fe")]
            + [_num([r.get(key) for r in g]) for key in ("mia_auc", "cg_mia", "ndcg20")]
            + [
                _num([r.get("ndcg20_retrain") for r in g]),
                _num([r.get("first_reach_cg015_seconds") for r in g]),
            ]
        )
    return out


def _summary(bench: dict[str, Any]) -> str:
    m, cfg = bench.get("machine", {}), bench.get("config", {})
    ds, b = cfg.get("dataset", {}), cfg.get("bench", {})
    seeds = b.get("seeds", [])
    return (
        f"{'scale' if b.get('scale') else 'quick' if b.get('quick') else 'full'} run, "
        f"{len(seeds)} seed(s), dataset "
        f"{Path(str(ds.get('path', '?'))).name} ({ds.get('n_users', '?')} users x "
        f"{ds.get('n_items', '?')} items, {ds.get('n_train', '?')} training rows); "
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')} "
        f"on {m.get('device', '?')}. Scenario S: seconds per request (mean; p95 in bench.json)."
    )


def markdown_table(bench: dict[str, Any]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
        *("| " + " | ".join(cells) + " |" for cells in table_rows(bench)),
    ]
    return _summary(bench) + "\n\n" + "\n".join(lines) + "\n"


def format_table(bench: dict[str, Any]) -> str:
    """Fixed-width text version of the table, for the terminal."""
    rows = [HEADERS, *table_rows(bench)]
    widths = [max(len(r[c]) for r in rows) for c in range(len(HEADERS))]
    fmt = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    fmt.insert(1, "  ".join("-" * w for w in widths))
    return _summary(bench) + "\n" + "\n".join(fmt) + "\n"


def merge_benches(paths: list[Path]) -> dict[str, Any]:
    """One bench dict from several bench.json files (e.g. one run per model): rows appended."""
    benches = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(benches[0])
    merged["rows"] = [r for b in benches for r in b["rows"]]
    merged["trainings"] = [t for b in benches for t in b.get("trainings", [])]
    merged["sources"] = [str(p) for p in paths]
    return merged


def update_readme(readme_path: Path | str, bench_json_path: Path | str | list[Path]) -> None:
    """Replace the README region between the bench-table markers with the JSON's tables.

    ValueError when the README lacks the markers (they must be added once, by hand).
    """
    from recsys.bench.targets import targets_markdown

    readme = Path(readme_path)
    paths = bench_json_path if isinstance(bench_json_path, list) else [Path(bench_json_path)]
    bench = merge_benches(paths)
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(
            f"{readme}: no '{START}' ... '{END}' region to replace; add the two markers"
        )
    sources = ", ".join(f"`{p}`" for p in paths)
    note = f"_Generated by `eraser bench-table` from {sources}; do not edit by hand._"
    body = (
        f"{START}\n{note}\n\nTargets (issue #2), from the same rows:\n\n{targets_markdown(bench)}\n"
        f"All methods, last budget of each curve (mean ± std over seeds):\n\n"
        f"{markdown_table(bench)}{END}"
    )
    readme.write_text(pattern.sub(lambda _: body, text, count=1))
