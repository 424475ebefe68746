"""GET /v1/models and /v1/models/current (admin)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from service.db.models import ModelVersion, utcnow
from service.model_versions.service import activate_version
from service.recommendations.serving import ModelHolder
from tests.service.conftest import KeyMaker
from tests.service.recommendations.kit import Checkpoints, register


def test_current_is_404_when_no_version_is_active(
    client: TestClient, admin_headers: dict[str, str]
) -> None:
    r = client.get("/v1/models/current", headers=admin_headers)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found" and "active" in error["message"]
    assert error["details"] == {"served_version": None}
    r = client.get("/v1/models", headers=admin_headers)
    assert r.status_code == 200 and r.json() == {"items": [], "served_version": None}


def test_list_newest_first_and_current_vs_served(
    app: FastAPI, db: Session, checkpoints: Checkpoints, admin_headers: dict[str, str]
) -> None:
    register(db, checkpoints.v1, "v1", activate=True)
    register(db, checkpoints.v2, "v2", activate=False)
    # v2 registered an hour later, whatever the clock resolution
    later = utcnow() + timedelta(hours=1)
    db.execute(update(ModelVersion).where(ModelVersion.version == "v2").values(created_at=later))
    db.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        body = client.get("/v1/models", headers=admin_headers).json()
        assert [(v["version"], v["active"]) for v in body["items"]] == [("v2", False), ("v1", True)]
        assert body["served_version"] == "v1"
        v1 = body["items"][1]
        assert v1["kind"] == "trained" and v1["model_kind"] == "mf"
        assert (v1["n_users"], v1["n_items"]) == (30, 40) and len(v1["sha256"]) == 64
        assert (
            client.get("/v1/models?limit=1", headers=admin_headers).json()["items"][0]["version"]
            == "v2"
        )

        current = client.get("/v1/models/current", headers=admin_headers).json()
        assert current["active"]["version"] == "v1" and current["served_version"] == "v1"

        activate_version(db, "v2")
        db.commit()
        # the registry moves at once; this replica serves v2 only after its next poll
        current = client.get("/v1/models/current", headers=admin_headers).json()
        assert current["active"]["version"] == "v2" and current["active"]["active"] is True
        assert current["served_version"] == "v1"
        holder: ModelHolder = app.state.models
        holder.settings = holder.settings.model_copy(update={"model_poll_seconds": 0.0})
        holder._next_check = 0.0
        assert holder.maybe_refresh(app.state.sessions)
        current = client.get("/v1/models/current", headers=admin_headers).json()
        assert current["served_version"] == "v2"


def test_models_need_the_admin_scope(client: TestClient, make_key: KeyMaker) -> None:
    for path in ("/v1/models", "/v1/models/current"):
        assert client.get(path).status_code == 401
        r = client.get(path, headers=make_key("recommendations:read", "deletions:write"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_limit_is_validated(client: TestClient, admin_headers: dict[str, str]) -> None:
    r = client.get("/v1/models?limit=0", headers=admin_headers)
    assert r.status_code == 422 and "limit" in r.json()["error"]["message"]
