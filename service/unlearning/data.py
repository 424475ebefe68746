"""The data an unlearning job works on, expressed in the base checkpoint's dense ids.

``before`` is what the base model should have seen: the ``interactions`` table plus every
held row (every accepted, not yet purged deletion). ``deleted_pairs`` is every held row;
``deleted_users`` the users deleted as a whole. Users and items the checkpoint's id maps do
not know (imported after it was trained) cannot be expressed in the model: their rows are
dropped and counted.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from service.db.models import HeldInteraction, Interaction, Item, User


@dataclass(frozen=True)
class JobData:
    before: Interactions  # interactions + held rows, deduplicated by (user, item)
    deleted_pairs: Interactions  # every held row
    deleted_users: torch.Tensor  # (U,) dense ids of users deleted as a whole
    job_pairs: int  # held rows of this job's own requests (expressible ones)
    dropped_interactions: int  # rows of `interactions` the model cannot express
    dropped_held: int  # held rows the model cannot express


class DenseIds:
    """Database id -> the checkpoint's dense id (-1: not in the checkpoint)."""

    def __init__(self, db_ids: np.ndarray, dense: np.ndarray) -> None:
        order = np.argsort(db_ids)
        self._keys = db_ids[order]
        self._dense = dense[order]

    @classmethod
    def load(cls, session: Session, table: type[User] | type[Item], ids: IdMap) -> DenseIds:
        rows = session.execute(select(table.id, table.external_id)).all()
        db_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        known = pd.Index(np.asarray(ids.to_list(), dtype=object))
        dense = known.get_indexer(np.asarray([str(r[1]) for r in rows], dtype=object))
        return cls(db_ids, np.asarray(dense, dtype=np.int64))

    def map(self, db_ids: np.ndarray) -> np.ndarray:
        """Dense ids of ``db_ids`` (all present in the table: foreign keys), -1 if unknown."""
        if db_ids.size == 0:
            return np.empty(0, dtype=np.int64)
        pos = np.clip(np.searchsorted(self._keys, db_ids), 0, max(len(self._keys) - 1, 0))
        hit = self._keys[pos] == db_ids if len(self._keys) else np.zeros(db_ids.size, bool)
        return np.where(hit, self._dense[pos], -1)


@dataclass(frozen=True)
class _Rows:
    user: np.ndarray
    item: np.ndarray
    value: np.ndarray
    ts: np.ndarray

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> _Rows:
        """From (user, item, value, ts, ...) rows."""
        n = len(rows)
        return cls(
            np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
            np.fromiter((r[1] for r in rows), dtype=np.int64, count=n),
            np.fromiter((r[2] for r in rows), dtype=np.float32, count=n),
            np.fromiter((r[3] for r in rows), dtype=np.int64, count=n),
        )

    def to_dense(self, users: DenseIds, items: DenseIds) -> tuple[_Rows, np.ndarray]:
        """These rows in dense ids, and the mask of the ones that could be expressed."""
        u, i = users.map(self.user), items.map(self.item)
        ok = (u >= 0) & (i >= 0)
        return _Rows(u[ok], i[ok], self.value[ok], self.ts[ok]), ok

    def concat(self, other: _Rows) -> _Rows:
        return _Rows(
            np.concatenate([self.user, other.user]),
            np.concatenate([self.item, other.item]),
            np.concatenate([self.value, other.value]),
            np.concatenate([self.ts, other.ts]),
        )


def _interactions(rows: _Rows, n_users: int, n_items: int) -> Interactions:
    """Rows as Interactions, one per (user, item): the first occurrence wins."""
    keys = rows.user * n_items + rows.item
    _, first = np.unique(keys, return_index=True)
    first.sort()
    return Interactions.from_pairs(
        torch.from_numpy(rows.user[first].copy()),
        torch.from_numpy(rows.item[first].copy()),
        n_users,
        n_items,
        value=torch.from_numpy(rows.value[first].copy()),
        ts=torch.from_numpy(rows.ts[first].copy()),
    )


def load_job_data(
    session: Session, user_ids: IdMap, item_ids: IdMap, job_requests: Collection[uuid.UUID]
) -> JobData:
    """The job's before-data, deleted pairs and deleted users in the checkpoint's ids."""
    users = DenseIds.load(session, User, user_ids)
    items = DenseIds.load(session, Item, item_ids)
    n_users, n_items = len(user_ids), len(item_ids)
    live_rows = session.execute(
        select(Interaction.user_id, Interaction.item_id, Interaction.value, Interaction.ts)
    ).all()
    live, live_ok = _Rows.of(live_rows).to_dense(users, items)
    held_rows = session.execute(
        select(
            HeldInteraction.user_id,
            HeldInteraction.item_id,
            HeldInteraction.value,
            HeldInteraction.ts,
            HeldInteraction.request_id,
        )
    ).all()
    held, held_ok = _Rows.of(held_rows).to_dense(users, items)
    wanted = set(job_requests)
    of_job = np.fromiter((r[4] in wanted for r in held_rows), dtype=bool, count=len(held_rows))
    gone = select(User.id).where(User.deleted_at.is_not(None))
    gone_dense = users.map(np.asarray(list(session.scalars(gone)), dtype=np.int64))
    return JobData(
        before=_interactions(live.concat(held), n_users, n_items),
        deleted_pairs=_interactions(held, n_users, n_items),
        deleted_users=torch.from_numpy(np.unique(gone_dense[gone_dense >= 0])),
        job_pairs=int((of_job & held_ok).sum()),
        dropped_interactions=int((~live_ok).sum()),
        dropped_held=int((~held_ok).sum()),
    )
