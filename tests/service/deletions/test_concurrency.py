"""Concurrent deletions on a real Postgres: separate connections, real commits."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, delete, func, select

from service.auth.service import Principal, create_key
from service.db.models import ApiKey, DeletionRequest, HeldInteraction, Interaction, Item, User
from service.db.session import make_sessionmaker
from service.deletions import service
from service.errors import AppError
from tests.service.conftest import add_interactions


@pytest.fixture
def committed(pg_engine: Engine) -> Iterator[tuple[str, str]]:
    """Rows committed for real in the shared test database, removed after; (key id, tag)."""
    tag = uuid.uuid4().hex[:8]
    sessions = make_sessionmaker(pg_engine)
    with sessions() as s:
        add_interactions(s, [(f"cu-{tag}", f"ci-{tag}-{n}") for n in range(3)])
        key, _ = create_key(s, f"conc-{tag}", ["deletions:write"])
        s.commit()
    try:
        yield key.id, tag
    finally:
        with sessions() as s:
            user_ids = select(User.id).where(User.external_id == f"cu-{tag}")
            s.execute(delete(HeldInteraction).where(HeldInteraction.user_id.in_(user_ids)))
            s.execute(delete(DeletionRequest).where(DeletionRequest.api_key_id == key.id))
            s.execute(delete(Interaction).where(Interaction.user_id.in_(user_ids)))
            s.execute(delete(User).where(User.external_id == f"cu-{tag}"))
            s.execute(delete(Item).where(Item.external_id.like(f"ci-{tag}-%")))
            s.execute(delete(ApiKey).where(ApiKey.id == key.id))
            s.commit()


def _race(pg_engine: Engine, key_id: str, n: int, **kw: object) -> list[str]:
    """``n`` threads, each with its own connection, start the same deletion together;
    returns each outcome: 'accepted', 'replayed' or the error code."""
    sessions = make_sessionmaker(pg_engine)
    barrier = threading.Barrier(n)
    principal = Principal(key_id=key_id, name="race", scopes=frozenset({"deletions:write"}))

    def one(_: int) -> str:
        with sessions() as s:
            barrier.wait()
            try:
                got = service.request_interaction_deletion(s, principal, max_items=10, **kw)  # type: ignore[arg-type]
                s.commit()
            except AppError as exc:
                return exc.code
            return "replayed" if got.replayed else "accepted"

    with ThreadPoolExecutor(n) as pool:
        return sorted(pool.map(one, range(n)))


def test_same_idempotency_key_at_once_records_one_request(
    committed: tuple[str, str], pg_engine: Engine
) -> None:
    key_id, tag = committed
    outcomes = _race(
        pg_engine,
        key_id,
        6,
        user_external_id=f"cu-{tag}",
        items=[f"ci-{tag}-0", f"ci-{tag}-1"],
        idempotency_key=f"same-{tag}",
    )
    assert outcomes == ["accepted"] + ["replayed"] * 5
    with make_sessionmaker(pg_engine)() as s:
        n = s.scalar(
            select(func.count())
            .select_from(DeletionRequest)
            .where(DeletionRequest.idempotency_key == f"same-{tag}")
        )
        assert n == 1


def test_same_pair_at_once_without_key_accepts_exactly_one(
    committed: tuple[str, str], pg_engine: Engine
) -> None:
    key_id, tag = committed
    outcomes = _race(pg_engine, key_id, 6, user_external_id=f"cu-{tag}", items=[f"ci-{tag}-2"])
    assert outcomes == ["accepted"] + ["conflict"] * 5
