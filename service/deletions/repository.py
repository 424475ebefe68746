"""Queries of the deletion domain, named for what they run."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from service.db.models import (
    DeletionRequest,
    HeldInteraction,
    Interaction,
    Item,
    RequestScope,
    RequestStatus,
    User,
)
from service.paging import older_than


def get_user_by_external_id(session: Session, external_id: str) -> User | None:
    return session.scalars(select(User).where(User.external_id == external_id)).first()


def get_items_by_external_ids(session: Session, external_ids: Sequence[str]) -> dict[str, int]:
    rows = session.execute(
        select(Item.external_id, Item.id).where(Item.external_id.in_(list(external_ids)))
    )
    return {ext: int(i) for ext, i in rows}


def get_item_external_ids(session: Session, item_ids: Sequence[int]) -> list[str]:
    rows = session.execute(select(Item.external_id).where(Item.id.in_(list(item_ids))))
    return [r[0] for r in rows]


def get_by_idempotency_key(session: Session, api_key_id: str, key: str) -> DeletionRequest | None:
    stmt = select(DeletionRequest).where(
        DeletionRequest.api_key_id == api_key_id, DeletionRequest.idempotency_key == key
    )
    return session.scalars(stmt).first()


MovedRow = tuple[int, float, int]  # (item id, value, ts)


def delete_interactions_returning(
    session: Session, user_id: int, item_ids: Sequence[int] | None
) -> list[MovedRow]:
    """Delete the user's rows (all of them when ``item_ids`` is None); return what went."""
    stmt = delete(Interaction).where(Interaction.user_id == user_id)
    if item_ids is not None:
        stmt = stmt.where(Interaction.item_id.in_(list(item_ids)))
    result = session.execute(
        stmt.returning(Interaction.item_id, Interaction.value, Interaction.ts),
        execution_options={"synchronize_session": False},
    )
    return [(int(i), float(v), int(t)) for i, v, t in result]


def hold_rows(
    session: Session, request_id: uuid.UUID, user_id: int, rows: Sequence[MovedRow]
) -> None:
    if rows:
        session.execute(
            insert(HeldInteraction),
            [
                {"request_id": request_id, "user_id": user_id, "item_id": i, "value": v, "ts": t}
                for i, v, t in rows
            ],
        )


def held_by(session: Session, user_id: int, item_ids: Sequence[int]) -> dict[int, uuid.UUID]:
    """item id -> the request holding the user's row for it (only for held items)."""
    rows = session.execute(
        select(HeldInteraction.item_id, HeldInteraction.request_id).where(
            HeldInteraction.user_id == user_id, HeldInteraction.item_id.in_(list(item_ids))
        )
    )
    return {int(i): r for i, r in rows}


def restore_held_rows(session: Session, request_id: uuid.UUID) -> int:
    """Move a request's held rows back into ``interactions`` (cancellation)."""
    held = select(
        HeldInteraction.user_id, HeldInteraction.item_id, HeldInteraction.value, HeldInteraction.ts
    ).where(HeldInteraction.request_id == request_id)
    session.execute(insert(Interaction).from_select(["user_id", "item_id", "value", "ts"], held))
    result = session.execute(
        delete(HeldInteraction).where(HeldInteraction.request_id == request_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def get_user_deletion(session: Session, user_id: int) -> DeletionRequest | None:
    """The live (not cancelled or failed) whole-user deletion of ``user_id``."""
    stmt = select(DeletionRequest).where(
        DeletionRequest.user_id == user_id,
        DeletionRequest.scope == RequestScope.user,
        DeletionRequest.status.not_in([RequestStatus.cancelled, RequestStatus.failed]),
    )
    return session.scalars(stmt).first()


def get_request_for_update(session: Session, request_id: uuid.UUID) -> DeletionRequest | None:
    return session.get(DeletionRequest, request_id, with_for_update=True)


def list_requests(
    session: Session,
    *,
    api_key_id: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> list[tuple[DeletionRequest, str]]:
    """Requests newest first (keyset paging), each with its user's external id."""
    stmt = select(DeletionRequest, User.external_id).join(User, User.id == DeletionRequest.user_id)
    if api_key_id is not None:
        stmt = stmt.where(DeletionRequest.api_key_id == api_key_id)
    if status is not None:
        stmt = stmt.where(DeletionRequest.status == status)
    if cursor is not None:
        stmt = stmt.where(older_than(DeletionRequest.created_at, DeletionRequest.id, cursor))
    stmt = stmt.order_by(DeletionRequest.created_at.desc(), DeletionRequest.id.desc()).limit(limit)
    return [(r, ext) for r, ext in session.execute(stmt).all()]


def clear_user_deleted(session: Session, user_id: int) -> None:
    session.execute(update(User).where(User.id == user_id).values(deleted_at=None))
