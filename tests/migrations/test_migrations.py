"""`alembic upgrade head` on an empty database yields exactly the ORM's schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.db.models import Base
from service.db.session import make_engine
from service.migrate import upgrade_to_head
from tests.service.conftest import PG_ADMIN, _pg_server_url


@pytest.fixture
def empty_pg() -> Iterator[str]:
    name = f"rtbf_migr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_server_url(name)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("db", ["postgres", "sqlite"])
def test_upgrade_head_matches_the_models(
    db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("empty_pg") if db == "postgres" else f"sqlite:///{tmp_path}/m.db"
    upgrade_to_head(url)
    upgrade_to_head(url)  # idempotent: a second run is a no-op
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(ctx, Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert diff == [], f"migrations and models disagree: {diff}"
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
