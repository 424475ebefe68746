"""The `eraser` subcommands of the ML core itself: demo, train-checkpoint, unlearn."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

from recsys.config import load_config
from recsys.data.errors import DataError
from recsys.data.interactions import Interactions
from recsys.data.loaders import load_dataset
from recsys.data.split import leave_latest_out
from recsys.demo import DEFAULT_DATASET


def add_core_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("demo", help="train, delete, unlearn and show what was forgotten")
    d.add_argument("--out", type=Path, default=Path("var/demo"), help="checkpoint directory")
    d.add_argument("--model", default="mf", choices=("mf", "neumf"))
    d.add_argument("--no-retrain", action="store_true", help="skip the retrain comparison")
    d.add_argument("--config", type=Path, default=None, help="project config TOML")

    t = sub.add_parser(
        "train-checkpoint", help="train a model on a dataset file's training split (no database)"
    )
    t.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    t.add_argument("--model", default="mf", choices=("mf", "neumf"))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    t.add_argument("--config", type=Path, default=None, help="project config TOML")
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")

    u = sub.add_parser("unlearn", help="unlearn deletions from a checkpoint with AltEraser")
    u.add_argument("--checkpoint", type=Path, required=True)
    u.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="data it was trained on")
    u.add_argument(
        "--delete",
        type=Path,
        required=True,
        help="CSV with header user,item (external ids); an empty item deletes the whole user",
    )
    u.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    u.add_argument("--config", type=Path, default=None, help="project config TOML")
    u.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")


def run_core_command(args: argparse.Namespace) -> int | None:
    """Run demo/train-checkpoint/unlearn; ``None`` when ``args.command`` is not one of them."""
    if args.command == "demo":
        from recsys.demo import run_demo

        cfg = load_config(args.config)
        return run_demo(
            out_dir=args.out, cfg=cfg, kind=args.model, compare_retrain=not args.no_retrain
        )
    if args.command == "train-checkpoint":
        return _train(args)
    if args.command == "unlearn":
        return _unlearn(args)
    return None


def _train(args: argparse.Namespace) -> int:
    from recsys.checkpoint import load_checkpoint
    from recsys.engine import train_checkpoint
    from recsys.metrics import hit_ndcg

    ds = load_dataset(args.dataset)
    split = leave_latest_out(ds.interactions)
    rep = train_checkpoint(
        split.train,
        args.out,
        kind=args.model,
        cfg=load_config(args.config),
        seed=args.seed,
        user_ids=ds.user_ids,
        item_ids=ds.item_ids,
        device=args.device,
    )
    hr, ndcg = hit_ndcg(load_checkpoint(rep.checkpoint).model, split.train, split.test)
    print(json.dumps({**rep.__dict__, "test_hr20": hr, "test_ndcg20": ndcg}, indent=2))
    return 0


def _read_deletions(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(user, item) pairs and whole users, as external ids, from a user,item CSV."""
    if not path.is_file():
        raise DataError(path, "no such file")
    pairs: list[tuple[str, str]] = []
    users: list[str] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"user", "item"} <= set(reader.fieldnames):
            raise DataError(
                path, f"needs a header with columns user,item; found {reader.fieldnames}", line=1
            )
        for n, row in enumerate(reader, start=2):
            user, item = (row.get("user") or "").strip(), (row.get("item") or "").strip()
            if not user:
                raise DataError(path, "empty user id", line=n, column="user")
            if item:
                pairs.append((user, item))
            else:
                users.append(user)
    return pairs, users


def _unlearn(args: argparse.Namespace) -> int:
    from recsys.checkpoint import load_checkpoint
    from recsys.engine import unlearn_checkpoint

    ds = load_dataset(args.dataset)
    split = leave_latest_out(ds.interactions)
    loaded = load_checkpoint(args.checkpoint)
    user_ids = loaded.user_ids or ds.user_ids
    item_ids = loaded.item_ids or ds.item_ids
    pairs, users = _read_deletions(args.delete)
    try:
        pu = torch.tensor([user_ids.to_dense(u) for u, _ in pairs], dtype=torch.int64)
        pi = torch.tensor([item_ids.to_dense(i) for _, i in pairs], dtype=torch.int64)
        du = torch.tensor([user_ids.to_dense(u) for u in users], dtype=torch.int64)
    except KeyError as exc:
        raise DataError(args.delete, f"unknown id {exc}: not in the checkpoint's id map") from None
    deleted = Interactions.from_pairs(pu, pi, split.train.n_users, split.train.n_items)
    rep = unlearn_checkpoint(
        args.checkpoint,
        split.train,
        args.out,
        cfg=load_config(args.config),
        deleted_pairs=deleted,
        deleted_users=du,
        device=args.device,
    )
    print(json.dumps({k: v for k, v in rep.to_dict().items() if k != "history"}, indent=2))
    return 0
