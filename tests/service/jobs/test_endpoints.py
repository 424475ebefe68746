"""GET /v1/jobs (keyset paging, status filter) and /v1/jobs/{id} (admin)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.db.models import JobStatus, UnlearningJob
from tests.service.conftest import KeyMaker

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def jobs(db: Session) -> list[UnlearningJob]:
    """Five jobs newest first; the two newest share a created_at (the id breaks the tie)."""
    specs = [
        (T0 + timedelta(minutes=1), JobStatus.completed),
        (T0 + timedelta(minutes=2), JobStatus.failed),
        (T0 + timedelta(minutes=3), JobStatus.completed),
        (T0 + timedelta(minutes=4), JobStatus.queued),
        (T0 + timedelta(minutes=4), JobStatus.completed),
    ]
    rows = [
        UnlearningJob(
            id=uuid.uuid4(),
            status=status,
            request_ids=[str(uuid.uuid4())],
            base_version="v1",
            produced_version="v2" if status == JobStatus.completed else None,
            timings={"unlearn_seconds": 1.5},
            attempts=1,
            error="boom" if status == JobStatus.failed else None,
            created_at=created,
        )
        for created, status in specs
    ]
    db.add_all(rows)
    db.commit()
    return sorted(rows, key=lambda j: (j.created_at, j.id), reverse=True)


def pages(client: TestClient, headers: dict[str, str], query: str) -> list[list[str]]:
    out, cursor = [], None
    while True:
        url = f"/v1/jobs?{query}" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        out.append([j["id"] for j in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 10


def test_pages_of_two_cover_every_job_once_newest_first(
    client: TestClient, admin_headers: dict[str, str], jobs: list[UnlearningJob]
) -> None:
    got = pages(client, admin_headers, "limit=2")
    assert [len(p) for p in got] == [2, 2, 1]
    assert [i for p in got for i in p] == [str(j.id) for j in jobs]
    # a page size that divides the total still ends with a null cursor, no empty page
    assert [len(p) for p in pages(client, admin_headers, "limit=5")] == [5]
    # ties on created_at are split by id across pages
    assert [i for p in pages(client, admin_headers, "limit=1") for i in p] == [
        str(j.id) for j in jobs
    ]


def test_status_filter(
    client: TestClient, admin_headers: dict[str, str], jobs: list[UnlearningJob]
) -> None:
    done = [str(j.id) for j in jobs if j.status == JobStatus.completed]
    got = pages(client, admin_headers, "status=completed&limit=2")
    assert [i for p in got for i in p] == done and [len(p) for p in got] == [2, 1]
    body = client.get("/v1/jobs?status=running", headers=admin_headers).json()
    assert body == {"items": [], "next_cursor": None}


def test_bad_cursor_and_status_are_422(client: TestClient, admin_headers: dict[str, str]) -> None:
    not_a_uuid = base64.urlsafe_b64encode(json.dumps([T0.isoformat(), "x"]).encode()).decode()
    for cursor in ("garbage", not_a_uuid.rstrip("=")):
        r = client.get(f"/v1/jobs?cursor={cursor}", headers=admin_headers)
        assert r.status_code == 422, cursor
        error = r.json()["error"]
        assert error["code"] == "invalid_request" and "cursor" in error["message"]
        assert error["details"]["errors"][0]["field"] == "cursor"
    r = client.get("/v1/jobs?status=done", headers=admin_headers)
    assert r.status_code == 422
    error = r.json()["error"]
    assert "status" in error["message"]
    problem = error["details"]["errors"][0]["problem"]
    assert all(s.value in problem for s in JobStatus)
    for limit in ("0", "501"):
        r = client.get(f"/v1/jobs?limit={limit}", headers=admin_headers)
        assert r.status_code == 422 and "limit" in r.json()["error"]["message"]


def test_get_one_job(
    client: TestClient, admin_headers: dict[str, str], jobs: list[UnlearningJob]
) -> None:
    failed = next(j for j in jobs if j.status == JobStatus.failed)
    r = client.get(f"/v1/jobs/{failed.id}", headers=admin_headers)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == str(failed.id) and body["status"] == "failed"
    assert body["error"] == "boom" and body["request_ids"] == failed.request_ids
    assert body["timings"] == {"unlearn_seconds": 1.5} and body["base_version"] == "v1"

    missing = uuid.uuid4()
    r = client.get(f"/v1/jobs/{missing}", headers=admin_headers)
    assert r.status_code == 404 and str(missing) in r.json()["error"]["message"]
    assert r.json()["error"]["details"] == {"id": str(missing)}

    r = client.get("/v1/jobs/not-a-uuid", headers=admin_headers)
    assert r.status_code == 422 and "job_id" in r.json()["error"]["message"]


def test_jobs_need_the_admin_scope(client: TestClient, make_key: KeyMaker) -> None:
    for path in ("/v1/jobs", f"/v1/jobs/{uuid.uuid4()}"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=make_key("recommendations:read")).status_code == 403
