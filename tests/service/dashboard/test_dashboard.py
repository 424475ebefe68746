"""``GET /dashboard``: HTTP Basic with an admin key, counts that match the rows, escaping,
and no item id of any request on the page."""

from __future__ import annotations

import base64
import re
import uuid
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from service.db.models import (
    DeletionRequest,
    JobStatus,
    RequestStatus,
    UnlearningJob,
    User,
    utcnow,
)
from tests.service.conftest import Backend, KeyMaker, add_interactions

SECRET_ITEM = "secret-item-4711"


def basic(key_headers: dict[str, str], user: str = "admin") -> dict[str, str]:
    """HTTP Basic headers carrying the API key of ``make_key``'s bearer headers."""
    key = key_headers["Authorization"].removeprefix("Bearer ")
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _request(user_id: int, status: str, **kw: object) -> DeletionRequest:
    fields: dict[str, object] = {"items": [SECRET_ITEM], **kw}
    return DeletionRequest(
        fingerprint=uuid.uuid4().hex,
        scope="interactions",
        user_id=user_id,
        item_count=1,
        items_sha256="0" * 64,
        status=status,
        **fields,
    )


def seed(backend: Backend) -> uuid.UUID:
    """2 pending, 1 in progress, 3 completed, 1 failed (a reason with markup); two jobs."""
    now = utcnow()
    with backend.sessions() as s:
        add_interactions(s, [("u1", SECRET_ITEM), ("u1", "other")])
        uid = s.scalar(select(User.id).where(User.external_id == "u1"))
        assert uid is not None
        job = UnlearningJob(
            status=JobStatus.completed,
            request_ids=[str(uuid.uuid4()) for _ in range(3)],
            timings={"load": 0.25, "unlearn": 1.5, "verify": 0.125, "publish": 0.05},
            metrics={"verify": {"mean_rank_before": 3.25, "mean_rank_after": 37.75}},
            attempts=2,
            created_at=now - timedelta(seconds=30),
            finished_at=now - timedelta(seconds=20),
        )
        failed_job = UnlearningJob(
            status=JobStatus.failed,
            request_ids=[str(uuid.uuid4())],
            error="boom & <b>bold</b>",
            attempts=5,
            finished_at=now - timedelta(seconds=10),
        )
        queued = UnlearningJob(status=JobStatus.queued, request_ids=[str(uuid.uuid4())])
        s.add_all([job, failed_job, queued])
        s.flush()
        s.add_all(
            [
                _request(uid, RequestStatus.pending, created_at=now - timedelta(minutes=5)),
                _request(uid, RequestStatus.pending, created_at=now - timedelta(seconds=5)),
                _request(uid, RequestStatus.in_progress, job_id=queued.id),
                *[
                    _request(
                        uid,
                        RequestStatus.completed,
                        items=None,
                        job_id=job.id,
                        created_at=now - timedelta(seconds=40 + n),
                        completed_at=now - timedelta(seconds=20 - n),
                    )
                    for n in range(3)
                ],
                _request(
                    uid,
                    RequestStatus.failed,
                    failed_at=now,
                    failure_reason="<script>alert('x')</script> gone",
                ),
            ]
        )
        s.commit()
        return job.id


def card(html: str, status: str) -> int:
    found = re.search(rf'<div class="card" data-status="{status}"><div class="n">(\d+)</div>', html)
    assert found is not None, status
    return int(found.group(1))


def test_no_credentials_is_a_basic_challenge(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
        r = client.get("/dashboard", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Basic realm="rtbf dashboard"'


def test_wrong_key_is_401(client: TestClient, make_key: KeyMaker) -> None:
    good = make_key("admin")["Authorization"].removeprefix("Bearer ")
    wrong = good[:-2] + ("aa" if not good.endswith("aa") else "bb")
    token = base64.b64encode(f"admin:{wrong}".encode()).decode()
    r = client.get("/dashboard", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Basic realm="rtbf dashboard"'


def test_non_admin_key_is_403(client: TestClient, make_key: KeyMaker) -> None:
    r = client.get("/dashboard", headers=basic(make_key("deletions:write")))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"


def test_admin_sees_counts_jobs_and_escaped_failures(
    backend: Backend, client: TestClient, make_key: KeyMaker
) -> None:
    job_id = seed(backend)
    headers = basic(make_key("admin"))
    r = client.get("/dashboard", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert '<meta http-equiv="refresh" content="5">' in html

    assert card(html, "pending") == 2
    assert card(html, "in_progress") == 1
    assert card(html, "completed") == 3
    assert card(html, "failed") == 1
    assert card(html, "cancelled") == 0
    assert re.search(r'id="queue-pending"><div class="n">2<', html)
    assert re.search(r'id="queue-queued"><div class="n">1<', html)
    assert re.search(r'id="queue-running"><div class="n">0<', html)
    # the oldest pending request is about 5 minutes old
    assert re.search(r'id="oldest-pending"><div class="n">5\.\d min<', html)

    # the completed job: size, timings per phase, verification ranks, attempts
    row = re.search(r'<tr class="job" data-status="completed">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert cells[0] == str(job_id)[:8]
    assert cells[2] == "3"
    assert "load 250 ms" in cells[5] and "unlearn 1.5 s" in cells[5]
    assert "verify 125 ms" in cells[5] and "publish 50 ms" in cells[5]
    assert (cells[6], cells[7], cells[8]) == ("3.2", "37.8", "2")

    # failures, escaped
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; gone" in html
    assert "<script>" not in html
    assert "boom &amp; &lt;b&gt;bold&lt;/b&gt;" in html

    # both plots drawn inline, with points (3 completed requests, 1 unlearning time)
    assert html.count("<svg") == 2
    assert html.count("<circle") == 4
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")

    # only counts: no item id of any request
    assert SECRET_ITEM not in html


def test_admin_sees_versions_and_an_empty_state(client: TestClient, make_key: KeyMaker) -> None:
    r = client.get("/dashboard", headers=basic(make_key("admin"), user="anyone"))
    assert r.status_code == 200
    assert 'id="active-version">none<' in r.text
    assert "no unlearning jobs yet" in r.text
    assert "no failures" in r.text
    assert r.text.count("no data yet") == 2
