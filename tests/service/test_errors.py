"""Dependency failures: an unreachable database is a 503 and never a 202."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from service.app import create_app
from service.db.models import DeletionRequest, Interaction
from service.settings import Settings
from tests.service.conftest import Backend, KeyMaker, add_interactions

# a port nothing listens on: connecting fails at once, as with a stopped Postgres
DEAD_PG = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"


def test_database_down_is_503_not_500() -> None:
    app = create_app(Settings(database_url=DEAD_PG, inprocess_worker=False))
    key = "Bearer rtbf_0123456789ab." + "A" * 43
    with TestClient(app, raise_server_exceptions=False) as c:
        d = c.request(
            "DELETE",
            "/v1/users/u/interactions",
            json={"items": ["i"]},
            headers={"Authorization": key},
        )
        ready = c.get("/readyz")
        live = c.get("/healthz")
    assert d.status_code == 503 and d.json()["error"]["code"] == "database_unavailable"
    assert d.headers["Retry-After"]
    assert (
        ready.status_code == 503
        and "unreachable" in ready.json()["error"]["details"]["checks"]["database"]
    )
    assert live.status_code == 200


def test_commit_failure_is_503_and_nothing_is_recorded(
    backend: Backend, client: TestClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    with backend.sessions() as s:
        add_interactions(s, [("u1", "i1")])
        s.commit()

    def failing_commit(session: object) -> None:  # stands in for the connection dying at COMMIT
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr("service.deletions.endpoints.commit", failing_commit)
    r = client.request(
        "DELETE",
        "/v1/users/u1/interactions",
        json={"items": ["i1"]},
        headers=make_key("deletions:write"),
    )
    assert r.status_code == 503
    with backend.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DeletionRequest)) == 0
        assert s.scalar(select(func.count()).select_from(Interaction)) == 1


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    m = client.put("/healthz")
    assert m.status_code == 405 and m.json()["error"]["code"] == "method_not_allowed"
