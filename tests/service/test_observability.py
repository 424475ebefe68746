"""/metrics, request ids and JSON logs, and /readyz's Redis check."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.app import create_app
from service.db.models import DeletionRequest, UnlearningJob
from service.logging_setup import JsonFormatter, RequestIdFilter
from service.model_versions.service import register_version
from service.settings import Settings
from tests.service.conftest import Backend, KeyMaker, add_interactions
from tests.service.test_errors import DEAD_PG

CLOSED_REDIS = "redis://127.0.0.1:1/0"  # nothing listens there


def sample(text: str, name: str, labels: str = "") -> float | None:
    """The value of the series ``name{labels}`` in a text exposition, or None."""
    series = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def delete(client: TestClient, headers: dict[str, str], user: str, items: list[str]) -> None:
    r = client.request(
        "DELETE", f"/v1/users/{user}/interactions", json={"items": items}, headers=headers
    )
    assert r.status_code == 202, r.text


def test_latency_by_route_template_never_the_raw_path(
    backend: Backend, client: TestClient, make_key: KeyMaker
) -> None:
    user = "user-7f3a9c-private"
    with backend.sessions() as s:
        add_interactions(s, [(user, "i1"), ("u2", "i2")])
        s.commit()
    r = client.get(f"/v1/users/{user}/recommendations", headers=make_key("recommendations:read"))
    assert r.status_code == 200, r.text
    client.get("/v1/no/such/route/user-7f3a9c-private")
    m = client.get("/metrics")
    assert m.status_code == 200
    assert m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert (
        sample(
            text,
            "rtbf_http_request_duration_seconds_count",
            'method="GET",route="/v1/users/{user}/recommendations",status="2xx"',
        )
        == 1.0
    )
    assert 'route="unmatched",status="4xx"' in text
    assert user not in text
    assert sample(text, "rtbf_database_up") == 1.0
    assert "process_cpu_seconds_total" in text or "python_info" in text


def test_deletions_by_status_and_queue_depth_match_the_database(
    backend: Backend, client: TestClient, make_key: KeyMaker
) -> None:
    with backend.sessions() as s:
        add_interactions(s, [("u1", "i1"), ("u1", "i2"), ("u2", "i1")])
        s.commit()
    headers = make_key("deletions:write")
    delete(client, headers, "u1", ["i1"])
    delete(client, headers, "u2", ["i1"])
    text = client.get("/metrics").text
    with backend.sessions() as s:
        counts = dict(
            s.execute(
                select(DeletionRequest.status, func.count()).group_by(DeletionRequest.status)
            ).all()
        )
        jobs = dict(
            s.execute(
                select(UnlearningJob.status, func.count()).group_by(UnlearningJob.status)
            ).all()
        )
    assert sum(counts.values()) == 2
    for status in ("pending", "in_progress", "completed", "failed", "cancelled"):
        assert sample(text, "rtbf_deletion_requests", f'status="{status}"') == counts.get(status, 0)
    assert sample(text, "rtbf_deletion_queue_depth") == counts.get("pending", 0)
    for status in ("queued", "running"):
        assert sample(text, "rtbf_unlearning_jobs", f'status="{status}"') == jobs.get(status, 0)


def test_job_phase_durations_over_recent_completed_jobs(
    backend: Backend, client: TestClient
) -> None:
    with backend.sessions() as s:
        s.add_all(
            [
                UnlearningJob(status="completed", timings={"unlearn": 1.5, "publish": 0.25}),
                UnlearningJob(status="completed", timings={"unlearn": 2.5}),
                UnlearningJob(status="running", timings={"unlearn": 100.0}),
            ]
        )
        s.commit()
    text = client.get("/metrics").text
    assert sample(text, "rtbf_recent_job_phase_seconds", 'phase="unlearn"') == 4.0
    assert sample(text, "rtbf_recent_job_phase_jobs", 'phase="unlearn"') == 2.0
    assert sample(text, "rtbf_recent_job_phase_seconds_max", 'phase="unlearn"') == 2.5
    assert sample(text, "rtbf_recent_job_phase_jobs", 'phase="publish"') == 1.0


def test_active_model_version_series(backend: Backend, app: FastAPI, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"  # register_version reads only the checkpoint's config.json
    ckpt.mkdir()
    (ckpt / "config.json").write_text(
        json.dumps(
            {
                "kind": "mf",
                "weights_sha256": "0" * 64,
                "train_digest": "1" * 64,
                "n_users": 3,
                "n_items": 4,
            }
        )
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        before = c.get("/metrics").text
        with backend.sessions() as s:
            register_version(s, ckpt, version="v-obs-1", origin="trained", activate=True)
            s.commit()
        after = c.get("/metrics").text
    assert "rtbf_model_active{" not in before
    assert sample(after, "rtbf_model_active", 'version="v-obs-1"') == 1.0
    assert "rtbf_model_served{" not in after  # nothing loaded in this replica


def test_metrics_survive_a_database_outage() -> None:
    app = create_app(Settings(database_url=DEAD_PG, inprocess_worker=False, environment="test"))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.get("/healthz")
        r = c.get("/metrics")
    assert r.status_code == 200
    assert sample(r.text, "rtbf_database_up") == 0.0
    assert "rtbf_deletion_requests" not in r.text
    assert 'route="/healthz"' in r.text


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    # the test client's own httpx logger prints full URLs; production logging silences it
    # (configure_logging), and it is not the service's log
    client_log = logging.getLogger("httpx")
    level = client_log.level
    client_log.setLevel(logging.WARNING)
    caplog.handler.addFilter(RequestIdFilter())
    yield caplog
    client_log.setLevel(level)


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(rec)) for rec in caplog.records]


def test_request_id_is_echoed_and_on_the_log_records(
    client: TestClient, logs: pytest.LogCaptureFixture
) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": "req-abc.123"})
    assert r.headers["X-Request-ID"] == "req-abc.123"
    access = [line for line in json_lines(logs) if line["logger"] == "service.access"]
    assert access and access[-1]["request_id"] == "req-abc.123"
    assert access[-1]["route"] == "/healthz" and access[-1]["status"] == 200
    assert access[-1]["method"] == "GET" and isinstance(access[-1]["duration_ms"], float)
    assert set(access[-1]) >= {"ts", "level", "logger", "message"}

    fresh = client.get("/healthz").headers["X-Request-ID"]
    assert uuid.UUID(fresh)
    # an id that could forge log lines is replaced, not echoed
    odd = client.get("/healthz", headers={"X-Request-ID": "a b\tc"}).headers["X-Request-ID"]
    assert uuid.UUID(odd)


def test_secrets_and_deleted_ids_never_reach_the_logs(
    backend: Backend, client: TestClient, make_key: KeyMaker, logs: pytest.LogCaptureFixture
) -> None:
    with backend.sessions() as s:
        add_interactions(s, [("user-secret-91", "item-secret-42")])
        s.commit()
    headers = make_key("deletions:write")
    secret = headers["Authorization"].removeprefix("Bearer ")
    delete(client, headers, "user-secret-91", ["item-secret-42"])
    client.get("/v1/deletions", headers={"Authorization": "Bearer rtbf_bad.key-material-x"})
    lines = [json.dumps(line) for line in json_lines(logs)]
    assert any('"route": "/v1/users/{user}/interactions"' in line for line in lines)
    blob = "\n".join(lines) + logs.text
    for needle in (secret, secret.split(".")[-1], "key-material-x", "item-secret-42"):
        assert needle not in blob
    assert "user-secret-91" not in blob


def test_readyz_names_redis_when_it_is_down(backend: Backend) -> None:
    settings = backend.settings.model_copy(update={"redis_url": CLOSED_REDIS})
    app = create_app(settings, engine=backend.engine)
    app.state.sessions = backend.sessions
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/readyz")
    assert r.status_code == 503
    checks = r.json()["error"]["details"]["checks"]
    assert checks["redis"].startswith("unreachable")
    assert checks["database"] == "ok"
    assert not checks["model_feed"].startswith("ok")
    assert re.search(r"redis", json.dumps(checks))
