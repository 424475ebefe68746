"""The deletion endpoints on SQLite and Postgres: acceptance, idempotency, errors, cancel."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.db.models import DeletionRequest, HeldInteraction, Interaction, User
from tests.service.conftest import Backend, KeyMaker, add_interactions

ROWS = [("u1", "i1"), ("u1", "i2"), ("u1", "i3"), ("u2", "i1"), ("u2", "i4")]


@pytest.fixture
def seeded(backend: Backend) -> Backend:
    with backend.sessions() as s:
        add_interactions(s, ROWS)
        s.commit()
    return backend


@pytest.fixture
def writer(make_key: KeyMaker) -> dict[str, str]:
    return make_key("deletions:write")


def _pairs(s: Session, table: type[Interaction] | type[HeldInteraction]) -> set[tuple[str, str]]:
    from service.db.models import Item

    rows = s.execute(
        select(User.external_id, Item.external_id)
        .select_from(table)
        .join(User, User.id == table.user_id)
        .join(Item, Item.id == table.item_id)
    )
    return {(u, i) for u, i in rows}


def test_delete_interactions_moves_rows_and_answers_202_after_commit(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    r = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i2", "i1"]}, headers=writer
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "pending" and body["scope"] == "interactions"
    assert body["user"] == "u1" and body["items"] == ["i1", "i2"] and body["item_count"] == 2
    assert r.headers["Location"] == body["status_url"] == f"/v1/deletions/{body['id']}"
    with seeded.sessions() as s:  # a new session: what it sees was committed
        assert _pairs(s, Interaction) == set(ROWS) - {("u1", "i1"), ("u1", "i2")}
        assert _pairs(s, HeldInteraction) == {("u1", "i1"), ("u1", "i2")}
        req = s.get(DeletionRequest, uuid.UUID(body["id"]))
        assert req is not None and req.status == "pending"
    got = client.get(body["status_url"], headers=writer)
    assert got.status_code == 200 and got.json()["id"] == body["id"]


def test_idempotency_key_replays_same_body_and_rejects_another(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    h = {**writer, "Idempotency-Key": "k-1"}
    first = client.request("DELETE", "/v1/users/u1/interactions", json={"items": ["i1"]}, headers=h)
    again = client.request("DELETE", "/v1/users/u1/interactions", json={"items": ["i1"]}, headers=h)
    other = client.request("DELETE", "/v1/users/u1/interactions", json={"items": ["i2"]}, headers=h)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    assert other.json()["error"]["details"]["request_id"] == first.json()["id"]
    with seeded.sessions() as s:
        assert s.scalar(select(func.count()).select_from(DeletionRequest)) == 1
        assert ("u1", "i2") in _pairs(s, Interaction)


@pytest.mark.parametrize(
    ("path", "items", "status", "needle"),
    [
        ("/v1/users/nobody/interactions", ["i1"], 404, "'nobody'"),
        ("/v1/users/u1/interactions", ["i1", "zzz"], 404, "'zzz'"),
        ("/v1/users/u1/interactions", ["i4"], 404, "no interaction with item(s): 'i4'"),
    ],
)
def test_unknown_user_item_or_pair_is_404_naming_it(
    seeded: Backend,
    client: TestClient,
    writer: dict[str, str],
    path: str,
    items: list[str],
    status: int,
    needle: str,
) -> None:
    r = client.request("DELETE", path, json={"items": items}, headers=writer)
    assert r.status_code == status
    err = r.json()["error"]
    assert needle in err["message"] and set(err) == {"code", "message", "details"}
    with seeded.sessions() as s:
        assert _pairs(s, Interaction) == set(ROWS)  # nothing moved


def test_deleting_an_already_deleted_pair_is_409_naming_the_request(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    first = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i1"]}, headers=writer
    )
    again = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i1", "i3"]}, headers=writer
    )
    assert again.status_code == 409
    assert again.json()["error"]["details"]["items"] == {"i1": first.json()["id"]}
    with seeded.sessions() as s:
        assert ("u1", "i3") in _pairs(s, Interaction)  # the whole request was refused


def test_too_many_items_is_413(seeded: Backend, app: FastAPI, writer: dict[str, str]) -> None:
    app.state.settings.max_items_per_request = 2
    with TestClient(app) as c:
        r = c.request(
            "DELETE",
            "/v1/users/u1/interactions",
            json={"items": ["i1", "i2", "i3"]},
            headers=writer,
        )
    assert r.status_code == 413 and "maximum is 2" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "i1"}, "items"),
        ({"items": [""]}, "items.0"),
        ({"items": ["i1"], "extra": 1}, "extra"),
        ({"items": ["i1"], "callback_url": "not a url"}, "callback_url"),
    ],
)
def test_malformed_body_is_422_naming_the_field(
    seeded: Backend, client: TestClient, writer: dict[str, str], body: dict[str, object], field: str
) -> None:
    r = client.request("DELETE", "/v1/users/u1/interactions", json=body, headers=writer)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and field in err["message"]


def test_whole_user_deletion_moves_everything_and_is_not_repeatable(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    r = client.delete("/v1/users/u1", headers=writer)
    assert r.status_code == 202 and r.json()["scope"] == "user"
    assert r.json()["items"] == ["i1", "i2", "i3"]
    with seeded.sessions() as s:
        assert _pairs(s, Interaction) == {("u2", "i1"), ("u2", "i4")}
        user = s.scalars(select(User).where(User.external_id == "u1")).one()
        assert user.deleted_at is not None
    again = client.delete("/v1/users/u1", headers=writer)
    pairs = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i1"]}, headers=writer
    )
    assert (
        again.status_code == 409
        and again.json()["error"]["details"]["request_id"] == r.json()["id"]
    )
    assert pairs.status_code == 409


def test_cancel_returns_rows_and_only_while_pending(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    d = client.delete("/v1/users/u1", headers=writer).json()
    c = client.post(f"/v1/deletions/{d['id']}/cancel", headers=writer)
    assert c.status_code == 200 and c.json()["status"] == "cancelled"
    with seeded.sessions() as s:
        assert _pairs(s, Interaction) == set(ROWS) and not _pairs(s, HeldInteraction)
        user = s.scalars(select(User).where(User.external_id == "u1")).one()
        assert user.deleted_at is None
    again = client.post(f"/v1/deletions/{d['id']}/cancel", headers=writer)
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]
    # after cancelling, the user can be deleted again
    assert client.delete("/v1/users/u1", headers=writer).status_code == 202


def test_requests_are_visible_to_their_key_and_admins_only(
    seeded: Backend, client: TestClient, writer: dict[str, str], make_key: KeyMaker
) -> None:
    d = client.delete("/v1/users/u2", headers=writer).json()
    other = make_key("deletions:write", name="other")
    admin = make_key("admin")
    assert client.get(f"/v1/deletions/{d['id']}", headers=other).status_code == 404
    assert client.get(f"/v1/deletions/{d['id']}", headers=admin).status_code == 200
    assert client.get("/v1/deletions", headers=other).json()["items"] == []
    missing = client.get(f"/v1/deletions/{uuid.uuid4()}", headers=writer)
    assert missing.status_code == 404
    assert client.get("/v1/deletions/not-a-uuid", headers=writer).status_code == 422


def test_list_filters_by_status_and_pages_with_a_cursor(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    ids = []
    for items in (["i1"], ["i2"], ["i3"]):
        ids.append(
            client.request(
                "DELETE", "/v1/users/u1/interactions", json={"items": items}, headers=writer
            ).json()["id"]
        )
    client.post(f"/v1/deletions/{ids[0]}/cancel", headers=writer)
    seen: list[str] = []
    url = "/v1/deletions?limit=2"
    while url:
        page = client.get(url, headers=writer).json()
        seen += [p["id"] for p in page["items"]]
        url = f"/v1/deletions?limit=2&cursor={page['next_cursor']}" if page["next_cursor"] else ""
    assert seen == ids[::-1]
    pending = client.get("/v1/deletions?status=pending", headers=writer).json()["items"]
    assert [p["id"] for p in pending] == ids[:0:-1]
    assert client.get("/v1/deletions?status=bogus", headers=writer).status_code == 422
    import base64

    forged = base64.urlsafe_b64encode(b'["2026-01-01T00:00:00", "not-a-uuid"]').decode()
    for cursor in ("%%%", forged):
        bad = client.get(f"/v1/deletions?cursor={cursor}", headers=writer)
        assert bad.status_code == 422 and "cursor" in bad.json()["error"]["message"]


def test_postgres_accepts_in_one_statement_and_sqlite_in_the_general_path(
    seeded: Backend, client: TestClient, writer: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.deletions import repository

    general: list[int] = []
    real = repository.delete_interactions_returning

    def counted(*a: Any, **kw: Any) -> Any:
        general.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(repository, "delete_interactions_returning", counted)
    ok = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i1", "i2"]}, headers=writer
    )
    assert ok.status_code == 202
    assert general == ([] if seeded.name == "postgres" else [1])
    with seeded.sessions() as s:
        assert _pairs(s, HeldInteraction) == {("u1", "i1"), ("u1", "i2")}
        req = s.get(DeletionRequest, uuid.UUID(ok.json()["id"]))
        assert req is not None and req.items == ["i1", "i2"] and req.item_count == 2
    # an error case falls back to the general path on both databases, which names the item
    bad = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i3", "i4"]}, headers=writer
    )
    assert bad.status_code == 404 and "'i4'" in bad.json()["error"]["message"]
    with seeded.sessions() as s:
        assert ("u1", "i3") in _pairs(s, Interaction)  # the partial move was rolled back
