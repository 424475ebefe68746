"""Import a ratings file into the data repository (``users``, ``items``, ``interactions``).

Idempotent and deletion-safe: pairs already stored are skipped, and nothing a deletion
removed comes back (held pairs and every pair of a deleted user are skipped). All writes
happen in the caller's transaction; the file is fully parsed and checked before the first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session
from tqdm import tqdm

from recsys.data.errors import DataError
from recsys.data.loaders import load_dataset
from service.db.models import HeldInteraction, Interaction, Item, User

CHUNK = 5000  # rows per INSERT batch
LOOKUP_CHUNK = 500  # ids per IN (...) list; well under SQLite's bound-parameter limit
MAX_ID_LEN = 255  # users.external_id / items.external_id are String(255)

T = TypeVar("T")


@dataclass(frozen=True)
class ImportReport:
    """What one import added and skipped."""

    users_added: int
    items_added: int
    interactions_added: int
    skipped_existing: int
    skipped_deleted: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _check_id_lengths(path: Path | str, what: str, ids: Iterable[str]) -> None:
    # Postgres would reject a longer id mid-import; SQLite would silently store it
    for ext in ids:
        if len(ext) > MAX_ID_LEN:
            raise DataError(
                path, f"{what} id {ext[:40]!r}... is {len(ext)} characters; at most {MAX_ID_LEN}"
            )


def _pairs_of_users(
    session: Session, model: type[Interaction] | type[HeldInteraction], user_ids: list[int]
) -> set[tuple[int, int]]:
    """(user_id, item_id) pairs of ``model``'s table for the given internal user ids."""
    found: set[tuple[int, int]] = set()
    for chunk in _chunks(user_ids, LOOKUP_CHUNK):
        stmt = select(model.user_id, model.item_id).where(model.user_id.in_(chunk))
        found.update((int(u), int(i)) for u, i in session.execute(stmt))
    return found


def _insert_ids(session: Session, model: type[User] | type[Item], ids: list[str]) -> dict[str, int]:
    """Insert rows with these external ids; their internal ids by external id."""
    added: dict[str, int] = {}
    for chunk in _chunks(ids, CHUNK):
        stmt = insert(model).returning(model.external_id, model.id)
        rows = session.execute(stmt, [{"external_id": e} for e in chunk])
        added.update((str(e), int(i)) for e, i in rows)
    return added


def import_dataset(
    session: Session,
    path: Path | str,
    *,
    threshold: float | None = None,
    progress: bool = True,
) -> ImportReport:
    """Add the users, items and interactions of a ratings file that are not stored yet.

    Any format ``recsys.data.loaders.load_dataset`` reads. Raises DataError (before any
    write) on bad input. Flushes, never commits.
    """
    t0 = time.perf_counter()
    ds = load_dataset(path, threshold=threshold)
    user_ext = ds.user_ids.to_list()
    item_ext = ds.item_ids.to_list()
    _check_id_lengths(path, "user", user_ext)
    _check_id_lengths(path, "item", item_ext)
    inter = ds.interactions
    dense_u = inter.user.numpy()
    dense_i = inter.item.numpy()
    values = inter.value.numpy()
    stamps = inter.ts.numpy()

    users: dict[str, tuple[int, bool]] = {
        str(e): (int(i), d is not None)
        for e, i, d in session.execute(select(User.external_id, User.id, User.deleted_at))
    }
    items: dict[str, int] = {
        str(e): int(i) for e, i in session.execute(select(Item.external_id, Item.id))
    }
    # -1 = not stored yet; such a user or item cannot have stored or held pairs
    u_db = np.array([users.get(e, (-1, False))[0] for e in user_ext], dtype=np.int64)
    u_deleted = np.array([users.get(e, (-1, False))[1] for e in user_ext], dtype=bool)
    i_db = np.array([items.get(e, -1) for e in item_ext], dtype=np.int64)

    keep = ~u_deleted[dense_u]
    skipped_deleted = int((~keep).sum())
    known = keep & (u_db[dense_u] >= 0) & (i_db[dense_i] >= 0)
    skipped_existing = 0
    if known.any():
        rows = np.flatnonzero(known)
        owners = sorted({int(u) for u in u_db[dense_u[rows]]})
        stored = _pairs_of_users(session, Interaction, owners)
        held = _pairs_of_users(session, HeldInteraction, owners)
        pairs = zip(u_db[dense_u[rows]].tolist(), i_db[dense_i[rows]].tolist(), strict=True)
        for r, pair in zip(rows.tolist(), pairs, strict=True):
            if pair in held:
                keep[r] = False
                skipped_deleted += 1
            elif pair in stored:
                keep[r] = False
                skipped_existing += 1

    # only users and items that a kept row needs, so skipped rows add nothing at all
    new_users = [user_ext[d] for d in np.unique(dense_u[keep]).tolist() if u_db[d] < 0]
    new_items = [item_ext[d] for d in np.unique(dense_i[keep]).tolist() if i_db[d] < 0]
    added_users = _insert_ids(session, User, new_users)
    added_items = _insert_ids(session, Item, new_items)
    for d, e in enumerate(user_ext):
        if e in added_users:
            u_db[d] = added_users[e]
    for d, e in enumerate(item_ext):
        if e in added_items:
            i_db[d] = added_items[e]

    rows = np.flatnonzero(keep)
    records = [
        {"user_id": u, "item_id": i, "value": v, "ts": t}
        for u, i, v, t in zip(
            u_db[dense_u[rows]].tolist(),
            i_db[dense_i[rows]].tolist(),
            values[rows].tolist(),
            stamps[rows].tolist(),
            strict=True,
        )
    ]
    with tqdm(
        total=len(records), desc="import", unit="row", disable=not progress, leave=False
    ) as bar:
        for chunk in _chunks(records, CHUNK):
            session.execute(insert(Interaction), list(chunk))
            bar.update(len(chunk))
    session.flush()
    if records and session.get_bind().dialect.name == "postgresql":
        # fresh planner statistics: right after a bulk load Postgres still believes the tables
        # are tiny and picks hash joins over whole tables for per-user lookups (5x slower)
        session.execute(text("ANALYZE users, items, interactions"))
    return ImportReport(
        users_added=len(added_users),
        items_added=len(added_items),
        interactions_added=len(records),
        skipped_existing=skipped_existing,
        skipped_deleted=skipped_deleted,
        seconds=time.perf_counter() - t0,
    )
