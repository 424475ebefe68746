"""Recommendations for one user: the model's top k minus everything the user must not see."""

from __future__ import annotations

from sqlalchemy import CompoundSelect, Select, String, bindparam, null, select, union_all
from sqlalchemy.orm import Session

from service.db.models import HeldInteraction, Interaction, Item, User
from service.db.session import read_connection
from service.errors import NotFound
from service.recommendations.schemas import Recommendations, RecommendedItem, Source
from service.recommendations.serving import ModelHolder, Scored


class UserNotFound(NotFound):
    code = "user_not_found"


def _user_and_seen() -> CompoundSelect:
    """One statement for the user row and every item to exclude (interactions + held)."""
    users, items = User.__table__.c, Item.__table__.c
    user = bindparam("user", type_=String())

    def seen_items(table: type[Interaction] | type[HeldInteraction]) -> Select:
        rows = table.__table__.c
        return (
            select(null(), null(), items.external_id)
            .select_from(table.__table__)
            .join(User.__table__, users.id == rows.user_id)
            .join(Item.__table__, items.id == rows.item_id)
            .where(users.external_id == user)
        )

    # the user row has a non-null id and a null item; item rows the reverse. UNION ALL keeps
    # each branch an index lookup on both databases (a join on a union subquery would not)
    return union_all(
        select(users.id, users.deleted_at, null()).where(users.external_id == user),
        seen_items(Interaction),
        seen_items(HeldInteraction),
    )


# built once: the GET path only binds the user
USER_AND_SEEN = _user_and_seen()


def recommend(session: Session, holder: ModelHolder, user: str, k: int) -> Recommendations:
    """Top ``k`` for ``user``; held (deleted) items are excluded before unlearning finishes."""
    # Core on an autocommit connection: one round trip, no ORM object loading
    conn = read_connection(session)
    rows = conn.execute(USER_AND_SEEN, {"user": user}).all()
    found, deleted, seen = False, False, set()
    for user_id, deleted_at, item in rows:
        if user_id is not None:
            found, deleted = True, deleted_at is not None
        else:
            seen.add(item)
    if not found:
        raise UserNotFound(f"no user {user!r}", details={"user": user})
    served = holder.current  # read once: the whole response comes from this version
    version = served.version if served is not None else None
    if deleted:
        # a forgotten user is an anonymous one: the list must not depend on their history
        return _response(user, version, "popularity", holder.popular(conn)[:k])
    if served is not None and served.has_user(user):
        return _response(user, version, "model", served.top_k(user, seen, k))
    fallback = [(i, s) for i, s in holder.popular(conn) if i not in seen][:k]
    return _response(user, version, "popularity", fallback)


def _response(user: str, version: str | None, source: Source, scored: Scored) -> Recommendations:
    items = [RecommendedItem(item=i, score=s, rank=n) for n, (i, s) in enumerate(scored, 1)]
    return Recommendations(user=user, model_version=version, source=source, items=items)
