"""import_dataset: idempotent, all-or-nothing, and never brings deleted data back."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from recsys.data.errors import DataError
from service.data_import import import_dataset
from service.db.models import DeletionRequest, HeldInteraction, Interaction, Item, User, utcnow

ROWS = [  # user, item, rating, timestamp
    ("u1", "i1", 4.0, 100),
    ("u1", "i2", 3.5, 101),
    ("u2", "i1", 5.0, 102),
    ("u2", "i3", 2.0, 103),
    ("u3", "i4", 1.0, 104),
    ("u3", "i2", 4.5, 105),
]


def _csv(path: Path, rows: list[tuple[str, str, float, int]]) -> Path:
    lines = ["user,item,rating,timestamp", *(f"{u},{i},{v},{t}" for u, i, v, t in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _stored(session: Session) -> set[tuple[str, str, float, int]]:
    stmt = (
        select(User.external_id, Item.external_id, Interaction.value, Interaction.ts)
        .join(User, User.id == Interaction.user_id)
        .join(Item, Item.id == Interaction.item_id)
    )
    return {(u, i, float(v), int(t)) for u, i, v, t in session.execute(stmt)}


def _count(session: Session, model: type[User] | type[Item] | type[Interaction]) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _hold(session: Session, user: str, item: str | None) -> int:
    """What an accepted deletion does: move the rows to held_interactions (whole user:
    all rows, and deleted_at). Returns how many rows moved."""
    u = session.scalars(select(User).where(User.external_id == user)).one()
    rows = select(Interaction).where(Interaction.user_id == u.id)
    if item is not None:
        it = session.scalars(select(Item).where(Item.external_id == item)).one()
        rows = rows.where(Interaction.item_id == it.id)
    found = list(session.scalars(rows))
    req = DeletionRequest(
        id=uuid.uuid4(),
        fingerprint="f" * 64,
        scope="user" if item is None else "interactions",
        user_id=u.id,
        items=None if item is None else [item],
        item_count=len(found),
        items_sha256="0" * 64,
    )
    session.add(req)
    session.flush()
    for r in found:
        session.add(
            HeldInteraction(
                request_id=req.id, user_id=r.user_id, item_id=r.item_id, value=r.value, ts=r.ts
            )
        )
        session.execute(
            delete(Interaction).where(
                Interaction.user_id == r.user_id, Interaction.item_id == r.item_id
            )
        )
    if item is None:
        u.deleted_at = utcnow()
    session.flush()
    return len(found)


def test_import_stores_every_row_and_a_second_import_adds_nothing(
    db: Session, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "ratings.csv", ROWS)
    rep = import_dataset(db, path, progress=False)
    assert (rep.users_added, rep.items_added, rep.interactions_added) == (3, 4, 6)
    assert (rep.skipped_existing, rep.skipped_deleted) == (0, 0)
    assert _stored(db) == set(ROWS)

    again = import_dataset(db, path, progress=False)
    assert (again.users_added, again.items_added, again.interactions_added) == (0, 0, 0)
    assert (again.skipped_existing, again.skipped_deleted) == (6, 0)
    assert _stored(db) == set(ROWS)
    assert (_count(db, User), _count(db, Item), _count(db, Interaction)) == (3, 4, 6)


def test_a_larger_file_adds_only_what_is_new(db: Session, tmp_path: Path) -> None:
    import_dataset(db, _csv(tmp_path / "a.csv", ROWS[:3]), progress=False)
    extra = [("u4", "i9", 3.0, 200), ("u1", "i3", 2.5, 201)]
    rep = import_dataset(db, _csv(tmp_path / "b.csv", ROWS + extra), progress=False)
    assert (rep.users_added, rep.items_added, rep.interactions_added) == (2, 3, 5)
    assert rep.skipped_existing == 3
    assert _stored(db) == set(ROWS + extra)


def test_threshold_keeps_only_high_values(db: Session, tmp_path: Path) -> None:
    rep = import_dataset(db, _csv(tmp_path / "r.csv", ROWS), threshold=4.0, progress=False)
    assert rep.interactions_added == 3
    assert _stored(db) == {r for r in ROWS if r[2] >= 4.0}
    assert _count(db, User) == 3 and _count(db, Item) == 2  # only ids a kept row uses


def test_bad_row_raises_and_writes_nothing(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,item,rating,timestamp\nu1,i1,4.0,1\nu2,i2,4.0,2\nu3,i3,oops,3\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 4.*'oops'"):
        import_dataset(db, path, progress=False)
    assert (_count(db, User), _count(db, Item), _count(db, Interaction)) == (0, 0, 0)


def test_too_long_id_raises_before_any_write(db: Session, tmp_path: Path) -> None:
    path = _csv(tmp_path / "long.csv", [("u1", "i1", 1.0, 1), ("x" * 300, "i2", 1.0, 2)])
    with pytest.raises(DataError, match="at most 255"):
        import_dataset(db, path, progress=False)
    assert (_count(db, User), _count(db, Item), _count(db, Interaction)) == (0, 0, 0)


def test_held_rows_and_deleted_users_are_not_reimported(db: Session, tmp_path: Path) -> None:
    path = _csv(tmp_path / "ratings.csv", ROWS)
    import_dataset(db, path, progress=False)
    assert _hold(db, "u1", "i2") == 1  # one pair of u1
    assert _hold(db, "u3", None) == 2  # the whole of u3
    before = _stored(db)
    assert before == {r for r in ROWS if r[:2] != ("u1", "i2") and r[0] != "u3"}

    # the same file plus a new row of the deleted user, on an item nobody else has
    rep = import_dataset(db, _csv(tmp_path / "more.csv", [*ROWS, ("u3", "i7", 5.0, 300)]))
    assert rep.interactions_added == 0 and rep.items_added == 0 and rep.users_added == 0
    assert rep.skipped_deleted == 4 and rep.skipped_existing == 3
    assert _stored(db) == before
    assert db.scalar(select(Item.id).where(Item.external_id == "i7")) is None
