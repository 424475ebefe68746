"""Claiming pending deletions into jobs: order, limits, cancellation, concurrent claimers."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from service.db.models import (
    DeletionRequest,
    JobStatus,
    RequestStatus,
    UnlearningJob,
    User,
    utcnow,
)
from service.db.session import make_sessionmaker
from service.unlearning.batcher import claim_batch
from tests.service.conftest import Backend, KeyMaker, add_interactions


def _requests(session: Session, user: str, statuses: list[str]) -> list[uuid.UUID]:
    """One request per status, created one minute apart in list order (oldest first)."""
    owner = User(external_id=user)
    session.add(owner)
    session.flush()
    t0 = utcnow() - timedelta(hours=1)
    rows = [
        DeletionRequest(
            id=uuid.uuid4(),
            fingerprint=hashlib.sha256(f"{user}{n}".encode()).hexdigest(),
            scope="interactions",
            user_id=owner.id,
            items=[f"i{n}"],
            item_count=1,
            items_sha256="0" * 64,
            status=status,
            created_at=t0 + timedelta(minutes=n),
        )
        for n, status in enumerate(statuses)
    ]
    # inserted newest first, so the claim order cannot come from insertion order
    session.add_all(reversed(rows))
    session.commit()
    return [r.id for r in rows]


def test_claim_takes_the_oldest_pending_requests_up_to_the_max(backend: Backend) -> None:
    statuses = ["pending", "cancelled", "pending", "completed", "pending", "pending", "pending"]
    with backend.sessions() as s:
        ids = _requests(s, "u1", statuses)
    pending = [i for i, st in zip(ids, statuses, strict=True) if st == "pending"]
    claimed: list[list[uuid.UUID]] = []
    for _ in range(4):
        with backend.sessions() as s:
            job = claim_batch(s, max_requests=2)
            s.commit()
            if job is None:
                break
            assert job.status == JobStatus.queued and job.attempts == 0
            claimed.append([uuid.UUID(r) for r in job.request_ids])
    assert claimed == [pending[0:2], pending[2:4], pending[4:5]]  # then nothing left: None
    with backend.sessions() as s:
        by_id = {r.id: r for r in s.scalars(select(DeletionRequest))}
        jobs = {j.id: j for j in s.scalars(select(UnlearningJob))}
        assert len(jobs) == 3
        for job in jobs.values():
            for rid in job.request_ids:
                req = by_id[uuid.UUID(rid)]
                assert req.status == RequestStatus.in_progress and req.job_id == job.id
                assert req.started_at is not None
        others = [by_id[i] for i in ids if i not in pending]
        assert [r.status for r in others] == ["cancelled", "completed"]
        assert all(r.job_id is None for r in others)


def test_claim_without_pending_requests_creates_no_job(backend: Backend) -> None:
    with backend.sessions() as s:
        _requests(s, "u1", ["cancelled", "failed"])
    with backend.sessions() as s:
        assert claim_batch(s, max_requests=10) is None
        s.commit()
        assert s.scalars(select(UnlearningJob)).first() is None
    with backend.sessions() as s, pytest.raises(ValueError, match="max_requests"):
        claim_batch(s, max_requests=0)


def test_a_claimed_request_can_no_longer_be_cancelled(
    backend: Backend, client: TestClient, make_key: KeyMaker
) -> None:
    with backend.sessions() as s:
        add_interactions(s, [("u1", "i1"), ("u1", "i2")])
        s.commit()
    writer = make_key("deletions:write")
    early = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i1"]}, headers=writer
    ).json()
    assert client.post(f"/v1/deletions/{early['id']}/cancel", headers=writer).status_code == 200
    late = client.request(
        "DELETE", "/v1/users/u1/interactions", json={"items": ["i2"]}, headers=writer
    ).json()
    with backend.sessions() as s:
        job = claim_batch(s, max_requests=10)
        s.commit()
        assert job is not None and job.request_ids == [late["id"]]  # the cancelled one is not
    r = client.post(f"/v1/deletions/{late['id']}/cancel", headers=writer)
    assert r.status_code == 409, r.text
    assert "in_progress" in r.json()["error"]["message"]
    assert client.get(f"/v1/deletions/{late['id']}", headers=writer).json()["status"] == (
        "in_progress"
    )


@pytest.fixture
def committed_requests(pg_engine: Engine) -> Iterator[list[uuid.UUID]]:
    """Twelve pending requests committed for real in the shared test database; removed
    after, with the jobs that claimed them."""
    tag = f"claim-{uuid.uuid4().hex[:8]}"
    sessions = make_sessionmaker(pg_engine)
    with sessions() as s:
        ids = _requests(s, tag, ["pending"] * 12)
    try:
        yield ids
    finally:
        with sessions() as s:
            jobs = set(s.scalars(select(DeletionRequest.job_id).where(DeletionRequest.id.in_(ids))))
            s.execute(delete(DeletionRequest).where(DeletionRequest.id.in_(ids)))
            s.execute(delete(UnlearningJob).where(UnlearningJob.id.in_(jobs - {None})))
            s.execute(delete(User).where(User.external_id == tag))
            s.commit()


def test_concurrent_claimers_never_take_the_same_request(
    committed_requests: list[uuid.UUID], pg_engine: Engine
) -> None:
    sessions = make_sessionmaker(pg_engine)
    n = 4
    barrier = threading.Barrier(n)

    def claimer(_: int) -> list[list[str]]:
        """Claim batches of 2 until nothing is left; each claim is its own transaction."""
        got: list[list[str]] = []
        barrier.wait()
        while True:
            with sessions() as s:
                job = claim_batch(s, max_requests=2)
                s.commit()
            if job is None:
                return got
            got.append(job.request_ids)

    with ThreadPoolExecutor(n) as pool:
        per_thread = list(pool.map(claimer, range(n)))
    taken = [rid for batches in per_thread for batch in batches for rid in batch]
    assert len(taken) == len(set(taken))  # no request in two jobs
    assert set(taken) == {str(i) for i in committed_requests}  # and none left behind
    with sessions() as s:
        reqs = list(
            s.scalars(select(DeletionRequest).where(DeletionRequest.id.in_(committed_requests)))
        )
        assert {r.status for r in reqs} == {RequestStatus.in_progress}
        for r in reqs:
            job = s.get(UnlearningJob, r.job_id)
            assert job is not None and str(r.id) in job.request_ids
