"""Sessions: single reads use autocommit connections unless bound to a caller's transaction."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from service.db.models import Base
from service.db.session import make_engine, make_sessionmaker, read_connection


def test_read_connection_is_autocommit_on_an_engine(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/r.db")
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine)() as session:
        conn = read_connection(session)
        assert conn.get_execution_options()["isolation_level"] == "AUTOCOMMIT"
    engine.dispose()


def test_read_connection_stays_in_a_bound_callers_transaction(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        assert read_connection(session) is conn and conn.in_transaction()
        session.close()
        outer.rollback()
