"""`eraser bench --scale`: one retrain vs AltEraser on a batch of 1,000 requests, at scale.

Synthetic power-law data (200k users x 50k items, 10M interactions, MF dim 64 at full
size; ``--scale-size`` shrinks every count by the same factor). The batch mixes pair
requests (1-3 items of one user) and whole-user deletions. Peak memory is reported per
phase. Utility and MIA are measured on a fixed sample of users so that evaluating each
round stays cheap next to the methods being timed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from recsys.bench.machine import PeakMemory
from recsys.bench.probe import Probe, Row, finalize_group
from recsys.bench.runner import BenchOptions, Run, timed, train_row
from recsys.bench.scenarios import mixed_batch
from recsys.config import ProjectConfig
from recsys.data.split import leave_latest_out
from recsys.data.synthetic import synthetic_interactions
from recsys.unlearn.alteraser import alteraser_iter

FULL_USERS, FULL_ITEMS, FULL_INTERACTIONS, DIM = 200_000, 50_000, 10_000_000, 64
N_REQUESTS = 1000
USER_SHARE = 0.1  # share of the requests that delete a whole user
EVAL_USERS = 2000  # test users sampled for utility and MIA negatives


def run_scale(
    bench: dict[str, Any],
    options: BenchOptions,
    cfg: ProjectConfig,
    device: torch.device,
    seed: int,
) -> None:
    """Fill bench's dataset description, trainings and rows (scenario "scale", model mf)."""
    f = options.scale_size
    n_users, n_items = max(100, round(FULL_USERS * f)), max(50, round(FULL_ITEMS * f))
    n_inter = max(20 * n_users, round(FULL_INTERACTIONS * f))
    cfg = dataclasses.replace(cfg, mf=dataclasses.replace(cfg.mf, dim=DIM))
    data = synthetic_interactions(n_users, n_items, n_inter, seed=seed)
    split = leave_latest_out(data)
    n_requests = min(N_REQUESTS, max(10, n_users // 10))
    task = mixed_batch(split.train, seed, n_requests, USER_SHARE)
    bench["config"]["mf"] = dataclasses.asdict(cfg.mf)
    bench["config"]["bench"].update(seeds=[seed], scale=True, n_requests=n_requests)
    bench["config"]["dataset"] = {
        "path": "synthetic",
        "scale_size": f,
        "n_users": n_users,
        "n_items": n_items,
        "n_interactions": len(data),
        "n_train": len(split.train),
        "n_requests": n_requests,
        "n_deleted": len(task.deleted),
        "n_deleted_users": int(task.deleted_users.numel()),
        "eval_users": EVAL_USERS,
    }
    run = Run("mf", seed, cfg, options.sweep(), device, options.progress)
    mem = PeakMemory(device)

    mem.reset()
    res, cpu = run.train(split.train, seed)
    bench["trainings"].append(
        {"model": "mf", "seed": seed, "epochs": res.epochs, "seconds": res.seconds,
         "cpu_seconds": cpu, "grad_norm": res.grad_norm, "converged": res.converged, **mem.read()}
    )  # fmt: skip
    original = res.model

    gen = torch.Generator().manual_seed(seed)
    test_users = torch.unique(split.test.user)
    sample = test_users[torch.randperm(test_users.numel(), generator=gen)[:EVAL_USERS]]
    test = split.test.subset(torch.isin(split.test.user, sample))
    probe = Probe("mf", cfg, seed, task.remaining, task.deleted, test)

    rows: list[Row] = []
    mem.reset()
    ref, ref_cpu = run.train(task.remaining, seed)
    probe.retrain_model, probe.noop_model = ref.model, original
    rows.append(
        {
            **train_row(run, "scale", "retrain", ref, ref_cpu),
            **mem.read(),
            **probe.measure(ref.model),
        }
    )
    noop = {"method": "noop", "budget": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    rows.append({**run.base("scale"), **noop, **probe.measure(original)})
    mem.reset()
    for snap, snap_cpu in timed(alteraser_iter(original, task, "mf", cfg, seed)):
        row: Row = {
            **run.base("scale"),
            "method": "alteraser",
            "budget": snap.budget,
            "rounds": snap.budget,
            "seconds": snap.seconds,
            "cpu_seconds": snap_cpu,
            **{k: v for k, v in snap.info.items() if k in ("loss", "users_solved", "items_solved")},
            **mem.read(),  # peak so far: evaluation between rounds is included, an upper bound
        }
        rows.append({**row, **probe.measure(snap.model)})
    for r in rows:
        r.update(n_requests=n_requests, n_deleted=len(task.deleted))
    finalize_group(rows)
    bench["rows"] = rows
