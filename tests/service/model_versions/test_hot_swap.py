"""POST /v1/models/hot-swap: publish, roll back and pin stored versions; failures change
nothing in the registry nor in what is served."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.app import create_app
from service.model_versions import endpoints
from service.recommendations.serving import ModelHolder, build_served
from tests.service.conftest import Backend, KeyMaker, add_interactions
from tests.service.hotswap.conftest import SHARED_REDIS, RedisServer, wait_for
from tests.service.recommendations.kit import Checkpoints, register

USER = "u5"


@pytest.fixture
def seeded(db: Session, checkpoints: Checkpoints) -> Checkpoints:
    """Training rows; v1 registered, v2 registered and active (the newer model in service)."""
    add_interactions(db, checkpoints.rows)
    register(db, checkpoints.v1, "v1", activate=False)
    register(db, checkpoints.v2, "v2", activate=True)
    return checkpoints


def make_app(backend: Backend, **settings: Any) -> FastAPI:
    # the database poll runs on every request, so a stale registry would show at once
    update = {"model_poll_seconds": 0.0, **settings}
    app = create_app(backend.settings.model_copy(update=update), engine=backend.engine)
    app.state.sessions = backend.sessions
    return app


@pytest.fixture
def client(seeded: Checkpoints, backend: Backend) -> Iterator[TestClient]:
    with TestClient(make_app(backend), raise_server_exceptions=False) as c:
        yield c


def swap(client: TestClient, headers: dict[str, str], version: str) -> Any:
    return client.post("/v1/models/hot-swap", json={"version": version}, headers=headers)


def current(client: TestClient, headers: dict[str, str]) -> tuple[str, str | None]:
    body = client.get("/v1/models/current", headers=headers).json()
    return body["active"]["version"], body["served_version"]


def recommended(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get(f"/v1/users/{USER}/recommendations", params={"k": 5}, headers=headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def expected_scores(path: Path, body: dict[str, Any]) -> list[float]:
    model = build_served("x", path)
    scored = dict(model.top_k(USER, set(), len(model.item_ids)))
    return [scored[e["item"]] for e in body["items"]]


def test_rollback_changes_the_active_and_served_version_and_recommendations(
    client: TestClient, seeded: Checkpoints, admin_headers: dict[str, str], make_key: KeyMaker
) -> None:
    reader = make_key("recommendations:read")
    assert current(client, admin_headers) == ("v2", "v2")
    assert recommended(client, reader)["model_version"] == "v2"

    r = swap(client, admin_headers, "v1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "v1" and body["previous_version"] == "v2" and body["published_at"]
    assert current(client, admin_headers) == ("v1", "v1")
    recs = recommended(client, reader)
    assert recs["model_version"] == "v1" and recs["source"] == "model"
    assert [e["score"] for e in recs["items"]] == pytest.approx(
        expected_scores(seeded.v1, recs), abs=1e-5
    )
    listed = client.get("/v1/models", headers=admin_headers).json()
    assert {v["version"]: v["active"] for v in listed["items"]} == {"v1": True, "v2": False}

    # and forward again
    assert swap(client, admin_headers, "v2").json()["previous_version"] == "v1"
    assert current(client, admin_headers) == ("v2", "v2")
    assert recommended(client, reader)["model_version"] == "v2"


def test_unknown_version_is_404_and_changes_nothing(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = swap(client, admin_headers, "v9")
    assert r.status_code == 404
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "no model version 'v9'",
        "details": {"version": "v9"},
    }
    assert current(client, admin_headers) == ("v2", "v2")


def test_an_unreadable_checkpoint_is_409_and_changes_nothing(
    seeded: Checkpoints,
    backend: Backend,
    db: Session,
    admin_headers: dict[str, str],
    tmp_path: Path,
) -> None:
    gone = tmp_path / "gone"
    shutil.copytree(seeded.v1, gone)
    register(db, gone, "v3", activate=False)
    shutil.rmtree(gone)
    with TestClient(make_app(backend), raise_server_exceptions=False) as client:
        r = swap(client, admin_headers, "v3")
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "checkpoint_unreadable"
        assert current(client, admin_headers) == ("v2", "v2")


def test_redis_unavailable_is_503_and_the_active_version_is_unchanged(
    seeded: Checkpoints, backend: Backend, admin_headers: dict[str, str]
) -> None:
    dead = RedisServer()  # a free port, never started: nothing listens there
    app = make_app(backend, redis_url=dead.url)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert current(client, admin_headers) == ("v2", "v2")  # database fallback at startup
        r = swap(client, admin_headers, "v1")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "redis_unavailable"
        assert r.headers["retry-after"] == "5"
        assert current(client, admin_headers) == ("v2", "v2")


def test_a_failed_commit_republishes_the_previous_version(
    client: TestClient, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_commit(session: Session) -> None:
        raise OperationalError("COMMIT", {}, Exception("connection lost"))

    monkeypatch.setattr(endpoints, "commit", broken_commit)
    r = swap(client, admin_headers, "v1")
    assert r.status_code == 503 and r.json()["error"]["code"] == "database_unavailable"
    assert current(client, admin_headers) == ("v2", "v2")


def test_through_redis_every_replica_switches(
    seeded: Checkpoints, backend: Backend, admin_headers: dict[str, str], prefix: str
) -> None:
    # two apps on one database and one Redis: the admin call reaches one, both switch
    apps = [make_app(backend, redis_url=SHARED_REDIS, redis_prefix=prefix) for _ in range(2)]
    with (
        TestClient(apps[0], raise_server_exceptions=False) as first,
        TestClient(apps[1], raise_server_exceptions=False),
    ):
        holders: list[ModelHolder] = [a.state.models for a in apps]
        assert [h.served_version for h in holders] == ["v2", "v2"]
        r = swap(first, admin_headers, "v1")
        assert r.status_code == 200, r.text
        wait_for(lambda: all(h.served_version == "v1" for h in holders), what="both to serve v1")
        assert redis.Redis.from_url(SHARED_REDIS).get(f"{prefix}:model:current") == b"v1"
        assert current(first, admin_headers) == ("v1", "v1")


def test_hot_swap_needs_the_admin_scope_and_a_version(
    client: TestClient, admin_headers: dict[str, str], make_key: KeyMaker
) -> None:
    assert client.post("/v1/models/hot-swap", json={"version": "v1"}).status_code == 401
    r = swap(client, make_key("recommendations:read", "deletions:write"), "v1")
    assert r.status_code == 403
    for body in ({}, {"version": ""}, {"version": "x" * 65}, {"version": "a\x00b"}):
        r = client.post("/v1/models/hot-swap", json=body, headers=admin_headers)
        assert r.status_code == 422 and "version" in r.json()["error"]["message"], body
    assert current(client, admin_headers) == ("v2", "v2")


def test_a_version_predating_completed_deletions_needs_an_explicit_override(
    client: TestClient, seeded: Checkpoints, admin_headers: dict[str, str], backend: Backend
) -> None:
    import hashlib
    import uuid

    from service.db.models import DeletionRequest, ModelVersion, User, utcnow

    with backend.sessions() as s:
        # v2 becomes a version unlearned from v1, and one deletion was completed in it
        v2 = s.get(ModelVersion, "v2")
        assert v2 is not None
        v2.parent_version, v2.kind = "v1", "unlearned"
        user = s.query(User).filter_by(external_id=USER).one()
        s.add(
            DeletionRequest(
                id=uuid.uuid4(), fingerprint="f", scope="interactions", user_id=user.id,
                items=None, item_count=1, items_sha256=hashlib.sha256(b"x").hexdigest(),
                status="completed", completed_at=utcnow(), model_version="v2",
            )
        )  # fmt: skip
        s.commit()
    refused = swap(client, admin_headers, "v1")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "would_reexpose_deleted_data"
    assert refused.json()["error"]["details"]["completed_deletions"] == 1
    assert current(client, admin_headers)[0] == "v2"  # nothing changed
    forced = client.post(
        "/v1/models/hot-swap", json={"version": "v1", "allow_reexposure": True},
        headers=admin_headers,
    )  # fmt: skip
    assert forced.status_code == 200, forced.text
    assert current(client, admin_headers)[0] == "v1"
    assert swap(client, admin_headers, "v2").status_code == 200  # a descendant is always fine
