"""Service test fixtures: every test runs against SQLite and a real Postgres, isolated.

- Postgres: one fresh database per test session (schema from the ORM; the migration test
  checks Alembic produces the same), each test inside an outer transaction that is rolled
  back; the app's commits become savepoint releases.
- SQLite: a fresh file per test.
Postgres must be reachable at ``RTBF_TEST_PG`` (default 127.0.0.1:5432, trust auth): tests
fail, not skip, when it is not (`.ci/run` starts it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from service.app import create_app
from service.auth.service import create_key
from service.db.models import Base, Interaction, Item, User
from service.db.session import make_engine
from service.settings import Settings

PG_ADMIN = os.environ.get("RTBF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_server_url(dbname: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + dbname


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh, empty Postgres database for this test session; its SQLAlchemy URL."""
    name = f"rtbf_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"Postgres is not reachable at {PG_ADMIN} ({exc}); run .ci/run to start it")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _pg_server_url(name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def pg_engine(pg_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@dataclass
class Backend:
    name: str
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """The database a test runs on: a fresh SQLite file, or a rolled-back Postgres
    transaction. ``sessions`` makes sessions whose commits stay inside the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/test.sqlite3"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        settings = Settings(
            database_url=url,
            model_dir=tmp_path / "models",
            environment="test",
            inprocess_worker=False,  # tests drive jobs themselves (tests/service/unlearning)
        )
        yield Backend("sqlite", settings, engine, sessionmaker(engine, expire_on_commit=False))
        engine.dispose()
        return
    engine = request.getfixturevalue("pg_engine")
    conn: Connection = engine.connect()
    outer = conn.begin()
    factory = sessionmaker(
        bind=conn, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    settings = Settings(
        database_url=str(engine.url.render_as_string(hide_password=False)),
        model_dir=tmp_path / "models",
        environment="test",
        inprocess_worker=False,
    )
    yield Backend("postgres", settings, engine, factory)
    outer.rollback()
    conn.close()


@pytest.fixture
def db(backend: Backend) -> Iterator[Session]:
    """A session on the test's database (commits stay inside the test)."""
    with backend.sessions() as session:
        yield session


@pytest.fixture
def app(backend: Backend) -> FastAPI:
    app = create_app(backend.settings, engine=backend.engine)
    app.state.sessions = backend.sessions
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


KeyMaker = Callable[..., dict[str, str]]


@pytest.fixture
def make_key(backend: Backend) -> KeyMaker:
    """``make_key("deletions:write", ...)`` -> Authorization headers for a new key."""

    def make(*scopes: str, name: str = "test") -> dict[str, str]:
        with backend.sessions() as session:
            _, full = create_key(session, name, list(scopes))
            session.commit()
        return {"Authorization": f"Bearer {full}"}

    return make


@pytest.fixture
def admin_headers(make_key: KeyMaker) -> dict[str, str]:
    return make_key("admin")


def add_interactions(session: Session, rows: list[tuple[str, str]], ts0: int = 1000) -> None:
    """Users, items and (user, item) interactions by external id, values 1, increasing ts."""
    users = {u: User(external_id=u) for u in dict.fromkeys(u for u, _ in rows)}
    items = {i: Item(external_id=i) for i in dict.fromkeys(i for _, i in rows)}
    session.add_all([*users.values(), *items.values()])
    session.flush()
    session.add_all(
        Interaction(user_id=users[u].id, item_id=items[i].id, value=1.0, ts=ts0 + n)
        for n, (u, i) in enumerate(rows)
    )
    session.flush()
