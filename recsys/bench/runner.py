"""`eraser bench`: every method on every (model, scenario, seed), measured side by side.

Per (model, seed): load the data, split leave-latest-out, train the original model, then
for each scenario run retrain, retrain-seed2, noop, warm-adamw (learning-rate sweep) and
alteraser on the same deletion, and measure every resulting model with one Probe.
The result is the bench.json structure: machine, versions, config, trainings, rows.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from recsys.bench.machine import machine_info, versions
from recsys.bench.probe import ADAMW, K, Probe, Row, finalize_group
from recsys.bench.scenarios import SCENARIOS, Scenario, build_scenario, subsample
from recsys.config import ProjectConfig, load_config
from recsys.data.interactions import Interactions
from recsys.data.loaders import load_dataset
from recsys.data.split import leave_latest_out
from recsys.device import pick_device
from recsys.train.objectives import MODEL_KINDS
from recsys.train.trainer import TrainResult, train
from recsys.unlearn.alteraser import alteraser, alteraser_iter
from recsys.unlearn.api import Snapshot, UnlearnTask
from recsys.unlearn.baselines import warm_adamw_iter

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "data" / "ml-latest-small"
SEED2_OFFSET = 1000  # retrain-seed2 uses seed + this


class BenchError(ValueError):
    """A problem with the benchmark's options that the user can fix (reported without traceback)."""


@dataclass(frozen=True)
class Sweep:
    """How much of each method's cost/quality curve is traced."""

    seeds: tuple[int, ...]
    lrs: tuple[float, ...]  # warm-adamw learning rates
    adamw_steps: int  # warm-adamw: last step budget ...
    adamw_every: int  # ... and the spacing of its snapshots
    s_requests: int  # scenario S: requests processed one after another
    s_adamw_steps: int  # scenario S: warm-adamw steps per request
    # --quick's smaller problem (None: the whole dataset)
    max_users: int | None = None  # keep this many random users ...
    min_item_count: int = 1  # ... and the items at least this many of their rows share


FULL = Sweep(
    seeds=(0, 1, 2), lrs=(3e-3, 1e-2, 3e-2), adamw_steps=300, adamw_every=30,
    s_requests=10, s_adamw_steps=50,
)  # fmt: skip
# --quick keeps every method, model and scenario and the config's stopping rules, and must
# finish in ~2 min on 2 CPU cores: one seed, two learning rates, fewer AdamW snapshots and
# S requests, on 100 random users and the items 5 of them share (ml-latest-small: ~10k
# training rows, ~1k items; every method's cost shrinks with the sizes).
QUICK = Sweep(
    seeds=(0,), lrs=(1e-2, 3e-2), adamw_steps=60, adamw_every=20, s_requests=3,
    s_adamw_steps=20, max_users=100, min_item_count=5,
)  # fmt: skip


@dataclass
class BenchOptions:
    quick: bool = False
    dataset: Path = DEFAULT_DATASET
    models: tuple[str, ...] = MODEL_KINDS
    scenarios: tuple[str, ...] = SCENARIOS
    seeds: tuple[int, ...] | None = None  # None: the sweep's seeds
    device: str = "auto"
    config: Path | None = None  # None: the project's default config
    threshold: float | None = None  # keep ratings >= threshold (None: every rating)
    scale: bool = False
    scale_size: float = 1.0  # fraction of the full scale problem
    progress: bool = True

    def sweep(self) -> Sweep:
        base = QUICK if self.quick else FULL
        return dataclasses.replace(base, seeds=self.seeds) if self.seeds is not None else base

    def validate(self) -> None:
        bad = [m for m in self.models if m not in MODEL_KINDS]
        if bad or not self.models:
            raise BenchError(f"unknown model(s) {bad}; choose from {', '.join(MODEL_KINDS)}")
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad or not self.scenarios:
            raise BenchError(f"unknown scenario(s) {bad}; choose from {', '.join(SCENARIOS)}")
        if self.seeds is not None and not self.seeds:
            raise BenchError("--seeds needs at least one seed")
        if not self.scale and not Path(self.dataset).exists():
            raise BenchError(f"dataset {self.dataset} does not exist; pass --dataset PATH")
        if self.config is not None and not Path(self.config).is_file():
            raise BenchError(f"config {self.config} does not exist")
        if not 0 < self.scale_size <= 1:
            raise BenchError(f"--scale-size must be in (0, 1], got {self.scale_size}")


@dataclass
class Run:
    """One (model kind, seed) of a benchmark: what every method of every scenario shares."""

    kind: str
    seed: int
    cfg: ProjectConfig
    sweep: Sweep
    device: torch.device
    progress: bool

    def base(self, scenario: str) -> Row:
        return {"model": self.kind, "scenario": scenario, "seed": self.seed}

    def train(self, data: Interactions, seed: int) -> tuple[TrainResult, float]:
        """Train from the seed's init to convergence (this is what `retrain` is); + CPU seconds."""
        cpu0 = time.process_time()
        res = train(self.kind, data, self.cfg, seed, progress=self.progress, device=self.device)
        return res, time.process_time() - cpu0


def timed(snaps: Iterator[Snapshot]) -> Iterator[tuple[Snapshot, float]]:
    """Each snapshot with the CPU seconds spent inside the iterator so far (all threads)."""
    cpu = 0.0
    while True:
        t0 = time.process_time()
        snap = next(snaps, None)
        cpu += time.process_time() - t0
        if snap is None:
            return
        yield snap, cpu


def train_row(run: Run, scenario: str, method: str, res: TrainResult, cpu: float) -> Row:
    return {
        **run.base(scenario),
        "method": method,
        "budget": res.epochs,
        "seconds": res.seconds,
        "cpu_seconds": cpu,
        "epochs": res.epochs,
        "grad_norm": res.grad_norm,
        "converged": res.converged,
    }


def _reference_rows(run: Run, sc: Scenario, original: nn.Module, probe: Probe) -> list[Row]:
    """retrain, retrain-seed2 and noop on the scenario's final remaining data."""
    rows = []
    res, cpu = run.train(sc.task.remaining, run.seed)
    probe.retrain_model, probe.noop_model = res.model, original
    rows.append({**train_row(run, sc.name, "retrain", res, cpu), **probe.measure(res.model)})
    res2, cpu2 = run.train(sc.task.remaining, run.seed + SEED2_OFFSET)
    rows.append(
        {**train_row(run, sc.name, "retrain-seed2", res2, cpu2), **probe.measure(res2.model)}
    )
    noop = {"method": "noop", "budget": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    rows.append({**run.base(sc.name), **noop, **probe.measure(original)})
    return rows


def _snapshot_row(run: Run, scenario: str, method: str, snap: Snapshot, cpu: float) -> Row:
    row: Row = {
        **run.base(scenario),
        "method": method,
        "budget": snap.budget,
        "seconds": snap.seconds,
        "cpu_seconds": cpu,
    }
    for key in ("loss", "rel_decrease", "users_solved", "items_solved", "converged"):
        if key in snap.info:
            row[key] = snap.info[key]
    return row


def _batch_rows(run: Run, sc: Scenario, original: nn.Module, probe: Probe) -> list[Row]:
    """Scenarios R and U: one batch; curves of warm-adamw (per lr) and alteraser (per round)."""
    rows = _reference_rows(run, sc, original, probe)
    sw = run.sweep
    for lr in sw.lrs:
        it = warm_adamw_iter(
            original, sc.task, run.kind, run.cfg, run.seed,
            lr=lr, max_steps=sw.adamw_steps, every=sw.adamw_every,
        )  # fmt: skip
        for snap, cpu in timed(it):
            row = _snapshot_row(run, sc.name, ADAMW, snap, cpu)
            rows.append({**row, "lr": lr, "steps": snap.budget, **probe.measure(snap.model)})
    for snap, cpu in timed(alteraser_iter(original, sc.task, run.kind, run.cfg, run.seed)):
        row = _snapshot_row(run, sc.name, "alteraser", snap, cpu)
        rows.append({**row, "rounds": snap.budget, **probe.measure(snap.model)})
    return rows


Step = Callable[[nn.Module, UnlearnTask], tuple[nn.Module, float, int]]


def _sequential(
    run: Run, sc: Scenario, train_set: Interactions, original: nn.Module, step: Step
) -> Row:
    """Process the scenario's requests one after another; per-request cost statistics."""
    model, remaining = original, train_set
    secs: list[float] = []
    budgets: list[int] = []
    cpu0 = time.process_time()
    for req in sc.requests:
        task = UnlearnTask.build(remaining, deleted_pairs=req)
        model, s, b = step(model, task)
        remaining = task.remaining
        secs.append(s)
        budgets.append(b)
    return {
        **run.base(sc.name),
        "budget": max(budgets),
        "seconds": float(np.mean(secs)),  # per request: compared with one retrain
        "seconds_p95": float(np.percentile(secs, 95)),
        "seconds_total": float(np.sum(secs)),
        "budget_mean": float(np.mean(budgets)),
        "n_requests": len(secs),
        "cpu_seconds": (time.process_time() - cpu0) / len(secs),
        "_model": model,
    }


def _request_rows(
    run: Run, sc: Scenario, train_set: Interactions, original: nn.Module, probe: Probe
) -> list[Row]:
    """Scenario S: per-request latency; metrics after all requests vs one final retrain."""
    rows = _reference_rows(run, sc, original, probe)

    def alt_step(model: nn.Module, task: UnlearnTask) -> tuple[nn.Module, float, int]:
        res = alteraser(model, task, run.kind, run.cfg, run.seed)
        return res.model, res.seconds, res.rounds

    def adamw_step(lr: float) -> Step:
        def step(model: nn.Module, task: UnlearnTask) -> tuple[nn.Module, float, int]:
            n = run.sweep.s_adamw_steps
            it = warm_adamw_iter(
                model, task, run.kind, run.cfg, run.seed, lr=lr, max_steps=n, every=n
            )
            last: Snapshot | None = None
            for snap in it:  # only the final state is served after each request
                last = snap
            if last is None:
                raise RuntimeError("warm_adamw_iter yielded no snapshot")
            return copy.deepcopy(last.model), last.seconds, last.budget

        return step

    for lr in run.sweep.lrs:
        row = _sequential(run, sc, train_set, original, adamw_step(lr))
        rows.append({**row, "method": ADAMW, "lr": lr, **probe.measure(row.pop("_model"))})
    row = _sequential(run, sc, train_set, original, alt_step)
    rows.append(
        {**row, "method": "alteraser", "rounds": row["budget"], **probe.measure(row.pop("_model"))}
    )
    return rows


def _scenario_rows(
    run: Run, name: str, train_set: Interactions, test: Interactions, original: nn.Module
) -> list[Row]:
    try:
        sc = build_scenario(name, train_set, run.seed, n_requests=run.sweep.s_requests)
    except ValueError as exc:  # the dataset is too small for the scenario
        raise BenchError(str(exc)) from None
    if name == "U":
        assert sc.probe is not None and sc.fold_in is not None
        probe = Probe(
            run.kind, run.cfg, run.seed, sc.task.remaining, sc.probe, test, fold_in=sc.fold_in
        )
    else:
        probe = Probe(run.kind, run.cfg, run.seed, sc.task.remaining, sc.task.deleted, test)
    if name == "S":
        rows = _request_rows(run, sc, train_set, original, probe)
    else:
        rows = _batch_rows(run, sc, original, probe)
    extra = {
        "n_deleted": len(sc.task.deleted),
        "n_deleted_users": int(sc.task.deleted_users.numel()),
    }
    for r in rows:
        r.update(extra)
    finalize_group(rows)
    return rows


def run_bench(options: BenchOptions) -> dict[str, Any]:
    """Run the benchmark described by ``options``; returns the bench.json structure."""
    options.validate()
    try:
        cfg = load_config(options.config)
    except ValueError as exc:  # malformed TOML or unknown keys: the user's file
        raise BenchError(str(exc)) from None
    try:
        device = pick_device(options.device)
    except (RuntimeError, ValueError) as exc:
        raise BenchError(str(exc)) from None
    sweep = options.sweep()
    bench: dict[str, Any] = {
        "machine": machine_info(device),
        "versions": versions(),
        "config": {
            **cfg.to_dict(),
            "bench": {**dataclasses.asdict(sweep), "quick": options.quick, "k": K},
        },
        "trainings": [],
        "rows": [],
    }
    if options.scale:
        from recsys.bench.scale import run_scale

        run_scale(bench, options, cfg, device, sweep.seeds[0])
        return bench
    data = load_dataset(options.dataset, threshold=options.threshold)
    inter = data.interactions
    if sweep.max_users is not None:
        inter = subsample(inter, sweep.max_users, sweep.min_item_count, seed=0)
    split = leave_latest_out(inter)
    bench["config"]["dataset"] = {
        "path": str(options.dataset),
        "source": data.source,
        "subsampled": sweep.max_users is not None,
        "n_users": inter.n_users,
        "n_items": inter.n_items,
        "n_interactions": len(inter),
        "n_train": len(split.train),
        "n_test": len(split.test),
    }
    jobs = [(kind, seed) for kind in options.models for seed in sweep.seeds]
    bar = tqdm(total=len(jobs) * len(options.scenarios), desc="bench", disable=not options.progress)
    for kind, seed in jobs:
        run = Run(kind, seed, cfg, sweep, device, options.progress)
        bar.set_postfix_str(f"{kind} seed {seed}: train")
        res, cpu = run.train(split.train, seed)
        bench["trainings"].append(
            {"model": kind, "seed": seed, "epochs": res.epochs, "seconds": res.seconds,
             "cpu_seconds": cpu, "grad_norm": res.grad_norm, "converged": res.converged}
        )  # fmt: skip
        for name in options.scenarios:
            bar.set_postfix_str(f"{kind} seed {seed}: {name}")
            bench["rows"] += _scenario_rows(run, name, split.train, split.test, res.model)
            bar.update(1)
    bar.close()
    return bench
