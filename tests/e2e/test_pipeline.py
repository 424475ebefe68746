"""End to end with real processes: Postgres, Redis, Celery worker(s) and beat, two uvicorn
replicas. Each test waits by polling with a deadline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import psycopg

from tests.e2e.stack import Stack, wait_for

JOB_DEADLINE = 90.0  # seconds: tiny model; generous for a loaded 2-core machine


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _served(url: str, key: str) -> str | None:
    body = httpx.get(f"{url}/v1/models/current", headers=_h(key), timeout=5).json()
    served: str | None = body["served_version"]
    return served


def _serving(url: str, key: str, version: str) -> Callable[[], bool]:
    return lambda: _served(url, key) == version


def _active(url: str, key: str) -> str:
    body = httpx.get(f"{url}/v1/models/current", headers=_h(key), timeout=5).json()
    return str(body["active"]["version"])


def _delete(url: str, key: str, user: str, items: list[str] | None = None) -> dict[str, Any]:
    if items is None:
        r = httpx.delete(f"{url}/v1/users/{user}", headers=_h(key), timeout=10)
    else:
        r = httpx.request(
            "DELETE", f"{url}/v1/users/{user}/interactions", json={"items": items},
            headers=_h(key), timeout=10,
        )  # fmt: skip
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def _completed(url: str, key: str, request_id: str) -> dict[str, Any] | None:
    body: dict[str, Any] = httpx.get(
        f"{url}/v1/deletions/{request_id}", headers=_h(key), timeout=5
    ).json()
    assert body["status"] != "failed", body
    return body if body["status"] == "completed" else None


def _completion(url: str, key: str, request_id: str) -> Callable[[], dict[str, Any] | None]:
    return lambda: _completed(url, key, request_id)


def _user_items(stack: Stack, user: str) -> list[str]:
    url = stack.env["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT items.external_id FROM interactions JOIN users ON users.id = user_id "
            "JOIN items ON items.id = item_id WHERE users.external_id = %s ORDER BY 1",
            (user,),
        ).fetchall()
    return [r[0] for r in rows]


def test_delete_is_unlearned_and_both_replicas_serve_the_new_version(
    stack: tuple[Stack, str],
) -> None:
    st, key = stack
    st.worker("w1")
    st.beat()
    (_, a), (_, b) = st.replica("api1"), st.replica("api2")
    v0 = _active(a, key)
    assert _served(a, key) == _served(b, key) == v0
    items = _user_items(st, "u3")[:3]
    req = _delete(a, key, "u3", items)
    done = wait_for(
        lambda: _completed(b, key, req["id"]), timeout=JOB_DEADLINE, what="deletion completed"
    )
    v1 = done["model_version"]
    assert v1 and v1 != v0 and done["items"] is None  # redacted once completed
    for url in (a, b):
        wait_for(_serving(url, key, v1), timeout=10, what=f"{url} serving {v1}")
    job = httpx.get(f"{a}/v1/jobs/{done['job_id']}", headers=_h(key), timeout=5).json()
    assert job["status"] == "completed" and job["produced_version"] == v1
    ranks = job["metrics"]["verify"]  # the deleted items' ranks in u3's full list
    assert ranks["mean_rank_after"] > ranks["mean_rank_before"], ranks

    def dashboard_lists_both_replicas_on_v1() -> bool:
        page = httpx.get(f"{a}/dashboard", auth=("admin", key), timeout=5).text
        table = page.split('id="replicas"', 1)[-1].split("</table>", 1)[0]
        return table.count("<tr>") == 3 and table.count(v1) == 2  # header + 2 replicas

    wait_for(dashboard_lists_both_replicas_on_v1, timeout=10, what="both replicas on the dashboard")


def _job(url: str, key: str, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/v1/jobs/{job_id}", headers=_h(key), timeout=5).json()
    return body


def _running_job_with_version(url: str, key: str) -> dict[str, Any] | None:
    jobs = httpx.get(f"{url}/v1/jobs", headers=_h(key), timeout=5).json()["items"]
    return next((j for j in jobs if j["produced_version"] and j["status"] == "running"), None)


def _versions(url: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{url}/v1/models", headers=_h(key), timeout=5).json()[
        "items"
    ]
    return items


def test_two_workers_never_process_the_same_request(stack: tuple[Stack, str]) -> None:
    st, key = stack
    st.worker("w1")
    st.worker("w2")
    st.beat()
    _, a = st.replica("api1")
    requests = [_delete(a, key, f"u{u}", _user_items(st, f"u{u}")[:1]) for u in range(10, 30)]
    done = [
        wait_for(_completion(a, key, r["id"]), timeout=JOB_DEADLINE, what=r["id"]) for r in requests
    ]
    jobs = {d["job_id"]: _job(a, key, d["job_id"]) for d in done}
    claimed = [rid for job in jobs.values() for rid in job["request_ids"]]
    assert sorted(claimed) == sorted(r["id"] for r in requests)  # each request in one job only
    for job in jobs.values():
        assert job["status"] == "completed" and job["attempts"] == 1, job
    # every version came from exactly one job, and each job built on the one before
    unlearned = [v for v in _versions(a, key) if v["kind"] == "unlearned"]
    assert len(unlearned) == len(jobs)
    assert len({v["parent_version"] for v in unlearned}) == len(unlearned)


def test_worker_killed_mid_job_resumes_and_completes_exactly_once(
    stack: tuple[Stack, str],
) -> None:
    st, key = stack
    doomed = st.worker("w1", env={"RTBF_FAULT_PAUSE": "after_unlearn=30"})
    st.beat()
    _, a = st.replica("api1")
    v0 = _active(a, key)
    req = _delete(a, key, "u5", _user_items(st, "u5")[:2])
    job = wait_for(
        lambda: _running_job_with_version(a, key), timeout=JOB_DEADLINE, what="job mid-way"
    )
    doomed.kill9()  # the version is registered, not yet published nor completed
    st.worker("w2")
    done = wait_for(lambda: _completed(a, key, req["id"]), timeout=JOB_DEADLINE, what="resume")
    after = _job(a, key, job["id"])
    assert done["job_id"] == job["id"] and done["model_version"] == job["produced_version"]
    assert after["status"] == "completed" and after["attempts"] == 2
    unlearned = [v for v in _versions(a, key) if v["kind"] == "unlearned"]
    assert [v["version"] for v in unlearned] == [job["produced_version"]]  # no second version
    assert unlearned[0]["parent_version"] == v0 and unlearned[0]["active"]
    wait_for(_serving(a, key, job["produced_version"]), timeout=10, what="replica switched")


def test_redis_down_during_publish_retries_while_serving_and_accepting(
    stack: tuple[Stack, str],
) -> None:
    st, key = stack
    st.worker("w1", env={"RTBF_FAULT_PAUSE": "before_publish=4"})
    st.beat()
    _, a = st.replica("api1")
    v0 = _active(a, key)
    redis_proc = st.procs[0]
    req = _delete(a, key, "u7", _user_items(st, "u7")[:2])
    job = wait_for(
        lambda: _running_job_with_version(a, key), timeout=JOB_DEADLINE, what="job mid-way"
    )
    redis_proc.kill9()
    failed = wait_for(
        lambda: (j := _job(a, key, job["id"]))["status"] == "failed" and j,
        timeout=30,
        what="publish to fail",
    )
    assert "Redis" in (failed["error"] or "") or "redis" in (failed["error"] or "")
    # while Redis is down: serving goes on from the old version, deletions are accepted
    recs = httpx.get(f"{a}/v1/users/u1/recommendations?k=5", headers=_h(key), timeout=5)
    assert recs.status_code == 200 and recs.json()["model_version"] == v0
    second = _delete(a, key, "u8", _user_items(st, "u8")[:1])
    st.redis()  # same port, empty: the queue is rebuilt from the database by the tick
    done = wait_for(lambda: _completed(a, key, req["id"]), timeout=JOB_DEADLINE, what="retry")
    assert done["model_version"] == job["produced_version"]
    wait_for(lambda: _completed(a, key, second["id"]), timeout=JOB_DEADLINE, what="second")
    assert _job(a, key, job["id"])["attempts"] >= 2


def test_rollback_through_the_hot_swap_endpoint(stack: tuple[Stack, str]) -> None:
    st, key = stack
    st.worker("w1")
    st.beat()
    (_, a), (_, b) = st.replica("api1"), st.replica("api2")
    v0 = _active(a, key)
    req = _delete(a, key, "u9", _user_items(st, "u9")[:2])
    v1 = wait_for(lambda: _completed(a, key, req["id"]), timeout=JOB_DEADLINE, what="done")[
        "model_version"
    ]
    for url in (a, b):
        wait_for(_serving(url, key, v1), timeout=10, what=f"{url} on {v1}")
    # v0 still carries u9's deleted rows: a plain rollback is refused ...
    r = httpx.post(f"{b}/v1/models/hot-swap", json={"version": v0}, headers=_h(key), timeout=10)
    assert r.status_code == 409 and r.json()["error"]["code"] == "would_reexpose_deleted_data"
    assert _active(a, key) == v1
    # ... and an incident rollback must say so explicitly
    body = {"version": v0, "allow_reexposure": True}
    r = httpx.post(f"{b}/v1/models/hot-swap", json=body, headers=_h(key), timeout=10)
    assert r.status_code == 200, r.text
    for url in (a, b):
        wait_for(_serving(url, key, v0), timeout=10, what=f"{url} rolled back to {v0}")
    assert _active(a, key) == v0
