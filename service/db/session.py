"""Engine and session factory. Commits happen in one place per entry point (the write
endpoints' ``commit`` call, the CLI command, the task wrapper), never inside services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite gets its directory, foreign keys and WAL."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    # no pool_pre_ping: it costs a round trip per request. After a database restart the first
    # use of each stale connection fails (503, the client retries) and the pool is refreshed
    kwargs.setdefault("pool_recycle", 1800)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    # fail fast when Postgres is unreachable: the API answers 503 instead of hanging
    kwargs.setdefault("connect_args", {"connect_timeout": 3})
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for a CLI command or task: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def read_connection(session: Session) -> Connection:
    """The session's connection for a single read in autocommit mode: no BEGIN/ROLLBACK
    round trips (about 0.35 ms per request on loopback Postgres). A session bound to a
    caller's connection (a test's rolled-back transaction) reads inside that transaction."""
    if isinstance(session.bind, Connection):
        return session.connection()
    return session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
