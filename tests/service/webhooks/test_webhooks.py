"""Signed status webhooks on SQLite and Postgres, delivered to a real local HTTP receiver."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from service.db.models import WebhookDelivery
from service.settings import Settings
from service.unlearning.batcher import claim_batch
from service.unlearning.job import _complete_phase, fail_job_permanently
from service.webhooks.delivery import deliver_due, sign
from tests.service.conftest import Backend, KeyMaker, add_interactions
from tests.service.webhooks.receiver import Receiver, closed_port_url

ROWS = [("u1", "secret-item-a"), ("u1", "secret-item-b"), ("u2", "secret-item-c")]
ITEM_IDS = ("secret-item-a", "secret-item-b", "secret-item-c")
SECRET = "test-webhook-secret"


@pytest.fixture
def seeded(backend: Backend) -> Backend:
    with backend.sessions() as s:
        add_interactions(s, ROWS)
        s.commit()
    backend.settings = backend.settings.model_copy(
        update={"webhook_secret": SECRET, "webhook_backoff_seconds": 0.01}
    )
    return backend


@pytest.fixture
def writer(make_key: KeyMaker) -> dict[str, str]:
    return make_key("deletions:write")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def _delete(
    client: TestClient, headers: dict[str, str], user: str, items: list[str], url: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"items": items}
    if url is not None:
        body["callback_url"] = url
    r = client.request("DELETE", f"/v1/users/{user}/interactions", json=body, headers=headers)
    assert r.status_code == 202, r.text
    return dict(r.json())


def _rows(backend: Backend) -> list[WebhookDelivery]:
    with backend.sessions() as s:
        return list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _deliver_until(backend: Backend, done: Any, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not done():
        assert time.monotonic() < deadline, "webhooks not delivered before the deadline"
        deliver_due(backend.sessions, backend.settings, limit=10)
        time.sleep(0.01)


def _verify(headers: dict[str, str], body: bytes) -> None:
    ts = headers["X-RTBF-Timestamp"]
    assert abs(int(ts) - time.time()) < 60
    scheme, _, got = headers["X-RTBF-Signature"].partition("=")
    assert scheme == "v1"
    assert hmac.compare_digest(got, sign(SECRET, ts, body))
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, "sha256").hexdigest()
    assert got == expected
    assert not hmac.compare_digest(got, sign("wrong-secret", ts, body))
    assert headers["Content-Type"] == "application/json"


def test_accepted_deletion_queues_a_signed_webhook_and_delivers_it(
    seeded: Backend, client: TestClient, writer: dict[str, str], receiver: Receiver
) -> None:
    req = _delete(client, writer, "u1", ["secret-item-a", "secret-item-b"], receiver.url)
    (row,) = _rows(seeded)
    assert row.status == "pending" and row.delivered_at is None and row.attempts == 0
    assert str(row.request_id) == req["id"]

    assert deliver_due(seeded.sessions, seeded.settings, limit=10) == 1
    (got,) = receiver.received
    assert got.path == "/hooks/rtbf"
    _verify(got.headers, got.body)
    assert got.headers["X-RTBF-Delivery"] == str(row.id)
    payload = json.loads(got.body)
    assert set(payload) == {
        "request_id",
        "status",
        "scope",
        "user",
        "item_count",
        "model_version",
        "occurred_at",
    }
    assert payload["request_id"] == req["id"] and payload["status"] == "pending"
    assert payload["scope"] == "interactions" and payload["user"] == "u1"
    assert payload["item_count"] == 2 and payload["model_version"] is None
    assert not any(i.encode() in got.body for i in ITEM_IDS)
    (row,) = _rows(seeded)
    assert row.delivered_at is not None and row.attempts == 0
    assert deliver_due(seeded.sessions, seeded.settings, limit=10) == 0  # nothing twice
    assert len(receiver.received) == 1


def test_cancel_sends_a_second_webhook_after_the_first(
    seeded: Backend, client: TestClient, writer: dict[str, str], receiver: Receiver
) -> None:
    req = _delete(client, writer, "u1", ["secret-item-a"], receiver.url)
    r = client.post(f"/v1/deletions/{req['id']}/cancel", headers=writer)
    assert r.status_code == 200, r.text
    rows = _rows(seeded)
    assert [w.status for w in rows] == ["pending", "cancelled"]
    _deliver_until(seeded, lambda: len(receiver.ok) >= 2)
    statuses = [json.loads(g.body)["status"] for g in receiver.received]
    assert statuses == ["pending", "cancelled"]
    ids = [int(g.headers["X-RTBF-Delivery"]) for g in receiver.received]
    assert ids == sorted(ids) and len(set(ids)) == 2
    for g in receiver.received:
        _verify(g.headers, g.body)
        assert json.loads(g.body)["request_id"] == req["id"]


def test_a_failing_receiver_gets_retries_with_backoff_and_one_success(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    with Receiver(fail_first=2) as receiver:
        _delete(client, writer, "u1", ["secret-item-a"], receiver.url)
        deliver_due(seeded.sessions, seeded.settings, limit=1)
        (row,) = _rows(seeded)
        assert row.attempts == 1 and row.delivered_at is None
        assert row.last_error is not None and "500" in row.last_error
        assert row.next_attempt_at is not None and row.next_attempt_at > row.created_at
        _deliver_until(seeded, lambda: len(receiver.ok) >= 1)
        time.sleep(0.05)
        deliver_due(seeded.sessions, seeded.settings, limit=10)
    assert [g.answered for g in receiver.received] == [500, 500, 204]
    assert len({g.headers["X-RTBF-Delivery"] for g in receiver.received}) == 1
    (row,) = _rows(seeded)
    assert row.delivered_at is not None and row.attempts == 2


def test_no_callback_url_no_outbox_rows(
    seeded: Backend, client: TestClient, writer: dict[str, str], receiver: Receiver
) -> None:
    req = _delete(client, writer, "u1", ["secret-item-a"], None)
    r = client.request("DELETE", "/v1/users/u2", headers=writer)
    assert r.status_code == 202, r.text
    assert client.post(f"/v1/deletions/{req['id']}/cancel", headers=writer).status_code == 200
    with seeded.sessions() as s:
        job = claim_batch(s, max_requests=10)
        assert job is not None
        s.commit()
    assert _rows(seeded) == []
    assert deliver_due(seeded.sessions, seeded.settings, limit=10) == 0
    assert receiver.received == []


def test_claim_complete_and_failure_queue_their_statuses(
    seeded: Backend, client: TestClient, writer: dict[str, str], receiver: Receiver
) -> None:
    first = _delete(client, writer, "u1", ["secret-item-a", "secret-item-b"], receiver.url)
    with seeded.sessions() as s:
        job = claim_batch(s, max_requests=10)
        assert job is not None
        s.commit()
        job_id = job.id
    _complete_phase(seeded.sessions, job_id)
    r = client.request(
        "DELETE", "/v1/users/u2", json={"callback_url": receiver.url}, headers=writer
    )
    assert r.status_code == 202, r.text
    second = r.json()
    with seeded.sessions() as s:
        job2 = claim_batch(s, max_requests=10)
        assert job2 is not None
        fail_job_permanently(s, job2, "gave up")
        s.commit()
    by_request: dict[str, list[str]] = {}
    for w in _rows(seeded):
        by_request.setdefault(str(w.request_id), []).append(w.status)
    assert by_request == {
        first["id"]: ["pending", "in_progress", "completed"],
        second["id"]: ["pending", "in_progress", "failed"],
    }
    _deliver_until(seeded, lambda: len(receiver.ok) >= 6)
    got: dict[str, list[str]] = {}
    for g in receiver.received:
        _verify(g.headers, g.body)
        assert not any(i.encode() in g.body for i in ITEM_IDS)
        p = json.loads(g.body)
        got.setdefault(p["request_id"], []).append(p["status"])
        if p["request_id"] == second["id"]:
            assert p["scope"] == "user" and p["user"] == "u2" and p["item_count"] == 1
    assert got == by_request


def test_unreachable_receiver_counts_attempts_then_gives_up(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    seeded.settings = seeded.settings.model_copy(
        update={"webhook_backoff_seconds": 0.0, "webhook_max_attempts": 3}
    )
    _delete(client, writer, "u1", ["secret-item-a"], closed_port_url())
    seen = []
    for _ in range(5):
        assert deliver_due(seeded.sessions, seeded.settings, limit=1) == 0
        (row,) = _rows(seeded)
        seen.append(row.attempts)
    assert seen == [1, 2, 3, 3, 3]
    (row,) = _rows(seeded)
    assert row.delivered_at is None and row.next_attempt_at is None
    assert row.last_error is not None and "Connect" in row.last_error


def test_later_webhooks_of_a_request_wait_for_an_earlier_undelivered_one(
    seeded: Backend, client: TestClient, writer: dict[str, str]
) -> None:
    with Receiver(fail_first=1) as receiver:
        req = _delete(client, writer, "u1", ["secret-item-a"], receiver.url)
        assert client.post(f"/v1/deletions/{req['id']}/cancel", headers=writer).status_code == 200
        seeded.settings = seeded.settings.model_copy(update={"webhook_backoff_seconds": 60.0})
        deliver_due(seeded.sessions, seeded.settings, limit=10)  # pending fails, backs off
        assert len(receiver.received) == 1  # cancelled is held back behind it
        with seeded.sessions() as s:
            first = s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).first()
            assert first is not None
            first.next_attempt_at = first.created_at  # due now
            s.commit()
        _deliver_until(seeded, lambda: len(receiver.ok) >= 2)
    statuses = [json.loads(g.body)["status"] for g in receiver.received]
    assert statuses == ["pending", "pending", "cancelled"]


def test_production_refuses_the_default_webhook_secret() -> None:
    with pytest.raises(ValidationError, match="RTBF_WEBHOOK_SECRET"):
        Settings(environment="production")
    ok = Settings(environment="production", webhook_secret=uuid.uuid4().hex)
    assert ok.webhook_secret != "dev-webhook-secret"
    assert Settings(environment="development").webhook_secret == "dev-webhook-secret"


def test_the_embedded_worker_delivers_webhooks_each_tick(
    seeded: Backend, client: TestClient, writer: dict[str, str], receiver: Receiver
) -> None:
    from service.unlearning.inprocess import InProcessWorker

    req = _delete(client, writer, "u1", ["secret-item-a"], receiver.url)
    assert client.post(f"/v1/deletions/{req['id']}/cancel", headers=writer).status_code == 200
    settings = seeded.settings.model_copy(update={"batch_window_seconds": 0.05})
    worker = InProcessWorker(seeded.sessions, settings, publish=lambda v: None)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(receiver.ok) < 2:
            assert time.monotonic() < deadline, "the embedded worker delivered nothing"
            time.sleep(0.02)
    finally:
        assert worker.stop(timeout=10)
    assert [json.loads(g.body)["status"] for g in receiver.ok] == ["pending", "cancelled"]
