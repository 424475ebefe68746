"""Model checkpoints: safetensors weights + config.json, rebuilt from the config alone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from recsys.data.idmap import IdMap

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
IDS = "ids.json"

Builder = Callable[[int, int, dict[str, Any]], nn.Module]


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or of a kind/version this code cannot rebuild."""


def _build_mf(n_users: int, n_items: int, cfg: dict[str, Any]) -> nn.Module:
    from recsys.models.mf import MF

    return MF(n_users, n_items, dim=int(cfg["dim"]), init_std=float(cfg.get("init_std", 0.1)))


def _build_neumf(n_users: int, n_items: int, cfg: dict[str, Any]) -> nn.Module:
    # imported here so checkpoints of other kinds load even where NeuMF is unavailable
    from recsys.config import NeuMFConfig
    from recsys.models.neumf import NeuMF

    known = {f.name for f in fields(NeuMFConfig)}
    # JSON turns tuples into lists; the frozen config wants tuples back
    kw: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items() if k in known
    }
    return NeuMF(n_users, n_items, NeuMFConfig(**kw))


BUILDERS: dict[str, Builder] = {"mf": _build_mf, "neumf": _build_neumf}


def register_builder(kind: str, builder: Builder) -> None:
    """Teach ``load_checkpoint`` to rebuild another model kind."""
    BUILDERS[kind] = builder


@dataclass
class LoadedCheckpoint:
    """A rebuilt model in eval mode, its config.json, and the id maps when saved."""

    model: nn.Module
    meta: dict[str, Any]
    user_ids: IdMap | None
    item_ids: IdMap | None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _jsonable(obj: Any) -> Any:
    """A JSON round trip: tuples become lists, anything exotic becomes its str()."""
    return json.loads(json.dumps(obj, default=str))


def _sizes(model: nn.Module) -> tuple[int, int]:
    try:
        return int(model.n_users), int(model.n_items)  # type: ignore[arg-type]
    except (AttributeError, TypeError):
        raise CheckpointError(
            f"{type(model).__name__} has no integer n_users/n_items; cannot checkpoint it"
        ) from None


def save_checkpoint(
    directory: Path | str,
    model: nn.Module,
    *,
    kind: str,
    model_config: dict[str, Any],
    seed: int,
    train_digest: str,
    user_ids: IdMap | None = None,
    item_ids: IdMap | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint into ``directory`` (replacing it) and return its path.

    Files are written into a sibling temp directory that is renamed into place, so a
    reader never sees a half-written checkpoint; an existing checkpoint is swapped out.
    """
    if kind not in BUILDERS:
        raise CheckpointError(f"unknown model kind {kind!r}; known: {', '.join(sorted(BUILDERS))}")
    target = Path(directory)
    n_users, n_items = _sizes(model)
    for name, ids, n in (("user_ids", user_ids, n_users), ("item_ids", item_ids, n_items)):
        if ids is not None and len(ids) != n:
            raise CheckpointError(f"{name} has {len(ids)} ids but the model has {n} rows")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS))
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "n_users": n_users,
            "n_items": n_items,
            "model_config": _jsonable(model_config),
            "seed": seed,
            "train_digest": train_digest,
            "user_ids_digest": None if user_ids is None else user_ids.digest(),
            "item_ids_digest": None if item_ids is None else item_ids.digest(),
            "weights_sha256": _sha256(tmp / WEIGHTS),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "extra": _jsonable(extra or {}),
        }
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        if user_ids is not None or item_ids is not None:
            id_lists = {
                "users": None if user_ids is None else user_ids.to_list(),
                "items": None if item_ids is None else item_ids.to_list(),
            }
            (tmp / IDS).write_text(json.dumps(id_lists, separators=(",", ":"), ensure_ascii=False))
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _read_meta(d: Path) -> dict[str, Any]:
    if not d.is_dir():
        raise CheckpointError(f"{d}: no checkpoint directory there")
    for name in (CONFIG, WEIGHTS):
        if not (d / name).is_file():
            raise CheckpointError(f"{d}: missing {name}; the checkpoint is incomplete")
    try:
        meta: dict[str, Any] = json.loads((d / CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{d / CONFIG}: not valid JSON ({exc})") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{d / CONFIG}: format_version {version!r} is not supported (expected {FORMAT_VERSION})"
        )
    missing = [k for k in ("kind", "n_users", "n_items", "model_config") if k not in meta]
    if missing:
        raise CheckpointError(f"{d / CONFIG}: missing key(s) {missing}")
    if meta["kind"] not in BUILDERS:
        known = ", ".join(sorted(BUILDERS))
        raise CheckpointError(f"{d / CONFIG}: unknown model kind {meta['kind']!r}; known: {known}")
    return meta


def _read_ids(d: Path, meta: dict[str, Any]) -> tuple[IdMap | None, IdMap | None]:
    want = {"users": meta.get("user_ids_digest"), "items": meta.get("item_ids_digest")}
    if not any(want.values()):
        return None, None
    if not (d / IDS).is_file():
        raise CheckpointError(f"{d}: missing {IDS}, which config.json says was saved")
    raw = json.loads((d / IDS).read_text())
    maps: dict[str, IdMap | None] = {}
    for key, digest in want.items():
        m = None if raw.get(key) is None else IdMap.from_list(raw[key])
        if (None if m is None else m.digest()) != digest:
            raise CheckpointError(
                f"{d / IDS}: the {key} id map does not match config.json's digest"
            )
        maps[key] = m
    return maps["users"], maps["items"]


def load_checkpoint(directory: Path | str) -> LoadedCheckpoint:
    """Rebuild the model from config.json and load its verified weights (eval mode)."""
    d = Path(directory)
    meta = _read_meta(d)
    actual = _sha256(d / WEIGHTS)
    if actual != meta.get("weights_sha256"):
        raise CheckpointError(
            f"{d / WEIGHTS}: sha256 {actual} does not match config.json "
            f"({meta.get('weights_sha256')}); the file is corrupt or was modified"
        )
    build = BUILDERS[meta["kind"]]
    try:
        model = build(int(meta["n_users"]), int(meta["n_items"]), meta["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{d / CONFIG}: cannot build a {meta['kind']} model: {exc}") from None
    try:
        model.load_state_dict(load_file(str(d / WEIGHTS)), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{d / WEIGHTS}: weights do not fit the model ({exc})") from None
    model.eval()
    user_ids, item_ids = _read_ids(d, meta)
    return LoadedCheckpoint(model, meta, user_ids, item_ids)


def read_meta(directory: Path | str) -> dict[str, Any]:
    """config.json of a checkpoint (checked for version and kind), without loading weights."""
    return _read_meta(Path(directory))
