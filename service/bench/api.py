"""`eraser bench-api`: load on loopback against the real service and a bare FastAPI endpoint.

Both run under the same uvicorn settings (one worker process) and the same load generator;
the targets are ratios measured in one run:
- GET recommendations: throughput >= 40% of the bare endpoint's, p99 <= 3x the bare p99;
- DELETE acceptance on Postgres: throughput >= 25% of the bare endpoint's, and every 202's
  request id is found in the database afterwards.
"""

from __future__ import annotations

import gc
import json
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from service.app import tune_runtime
from service.bench.loadgen import LoadResult, json_body, run_load
from service.bench.procs import HOST, Proc, ProcessDied, free_port, fresh_database, wait_for
from service.db.models import DeletionRequest, Interaction, Item, User
from service.db.session import make_engine, make_sessionmaker, session_scope
from service.deletions.schemas import InteractionDeletionIn
from service.migrate import upgrade_to_head
from service.settings import Settings

TARGETS = {"get_throughput_ratio": 0.40, "get_p99_ratio": 3.0, "delete_throughput_ratio": 0.25}


def bare_app() -> FastAPI:
    """The reference: FastAPI with no database, auth or model work, and the same runtime
    tuning (threadpool, switch interval, frozen GC) as the service."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_runtime(Settings())
        gc.collect()
        gc.freeze()
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare")
    def bare_get() -> dict[str, bool]:
        return {"ok": True}

    @app.delete("/bare/users/{user}/interactions", status_code=202)
    def bare_delete(user: str, body: InteractionDeletionIn) -> dict[str, str]:
        return {"id": str(uuid.uuid4()), "user": user}

    return app


bare = bare_app()


def _serve(name: str, target: str, port: int, env: dict[str, str], out: Path) -> Proc:
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", HOST, "--port", str(port)]
    cmd += ["--log-level", "warning", "--no-access-log", "--workers", "1"]
    return Proc(name, cmd, env, out / f"{name}.log").start()


def _wait_ready(proc: Proc, port: int, path: str) -> None:
    def ready() -> bool:
        if not proc.alive():
            raise ProcessDied(f"{proc.name} exited: {proc.tail(5)}")
        return httpx.get(f"http://{HOST}:{port}{path}", timeout=1).status_code == 200

    wait_for(ready, timeout=120, what=f"{proc.name} on port {port}", every=0.2)


def _prepare(
    url: str, dataset: Path, model_dir: Path
) -> tuple[str, list[str], list[tuple[str, str]]]:
    """Migrate, import, train; return an API key, user ids and deletable (user, item) pairs."""
    from service.auth.service import create_key
    from service.data_import import import_dataset
    from service.training import train_and_register

    upgrade_to_head(url)
    settings = Settings(database_url=url, model_dir=model_dir)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        import_dataset(s, dataset, progress=False)
    with session_scope(sessions) as s:
        train_and_register(s, settings, kind="mf", progress=False)
    with session_scope(sessions) as s:
        _, key = create_key(s, "bench", ["deletions:write", "recommendations:read"])
        users = list(s.scalars(select(User.external_id)))
        pairs = [
            (u, i)
            for u, i in s.execute(
                select(User.external_id, Item.external_id)
                .select_from(Interaction)
                .join(User, User.id == Interaction.user_id)
                .join(Item, Item.id == Interaction.item_id)
            )
        ]
    engine.dispose()
    return key, users, pairs


def _count_found(url: str, ids: list[str]) -> int:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as s:
            found = 0
            for start in range(0, len(ids), 1000):
                chunk = [uuid.UUID(i) for i in ids[start : start + 1000]]
                found += int(
                    s.scalar(
                        select(func.count())
                        .select_from(DeletionRequest)
                        .where(DeletionRequest.id.in_(chunk))
                    )
                    or 0
                )
            return found
    finally:
        engine.dispose()


def run_api_bench(
    *,
    dataset: Path,
    out: Path,
    duration: float = 10.0,
    connections: int = 16,
    seed: int = 0,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    procs: list[Proc] = []
    with fresh_database("rtbf_bench") as url:
        try:
            print(f"bench-api: preparing {url.rsplit('/', 1)[-1]} (migrate, import, train)")
            key, users, pairs = _prepare(url, dataset, out / "models")
            phases = _load_phases(out, url, key, users, pairs, procs, duration, connections, seed)
        finally:
            for p in procs:
                p.stop()
        accepted = [json.loads(b)["id"] for b in phases["delete"].bodies if b.startswith(b'{"id"')]
        found = _count_found(url, accepted)
    return _report(
        phases, accepted=len(accepted), found=found, duration=duration, connections=connections
    )


def _load_phases(
    out: Path,
    url: str,
    key: str,
    users: list[str],
    pairs: list[tuple[str, str]],
    procs: list[Proc],
    duration: float,
    connections: int,
    seed: int,
) -> dict[str, LoadResult]:
    """Start the bare and the real server (appended to ``procs``) and run the four phases."""
    random.Random(seed).shuffle(pairs)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "RTBF_MODEL_DIR": str(out / "models"),
        "RTBF_RATE_LIMIT_PER_SECOND": "1e9",
        "RTBF_RATE_LIMIT_BURST": "1000000000",
    }
    bare_port, app_port = free_port(), free_port()
    procs.append(_serve("bare", "service.bench.api:bare", bare_port, env, out))
    procs.append(_serve("app", "service.app:app", app_port, env, out))
    _wait_ready(procs[0], bare_port, "/bare")
    _wait_ready(procs[1], app_port, "/readyz")
    auth = {"Authorization": f"Bearer {key}"}
    common: dict[str, Any] = {"connections": connections, "duration": duration}

    def recs(n: int) -> tuple[str, str, bytes | None]:
        return "GET", f"/v1/users/{users[n % len(users)]}/recommendations?k=20", None

    def deletes(n: int) -> tuple[str, str, bytes | None]:
        u, i = pairs[n]
        return "DELETE", f"/v1/users/{u}/interactions", json_body({"items": [i]})

    def bare_deletes(n: int) -> tuple[str, str, bytes | None]:
        u, i = pairs[n % len(pairs)]
        return "DELETE", f"/bare/users/{u}/interactions", json_body({"items": [i]})

    print("bench-api: warm-up", flush=True)
    run_load(HOST, bare_port, lambda n: ("GET", "/bare", None), duration=2, connections=4)
    run_load(HOST, app_port, recs, auth, duration=2, connections=4)
    phases: dict[str, LoadResult] = {}
    print("bench-api: bare GET", flush=True)
    phases["bare_get"] = run_load(HOST, bare_port, lambda n: ("GET", "/bare", None), **common)
    print("bench-api: GET recommendations", flush=True)
    phases["recommendations"] = run_load(HOST, app_port, recs, auth, **common)
    print("bench-api: bare DELETE", flush=True)
    phases["bare_delete"] = run_load(HOST, bare_port, bare_deletes, **common)
    print("bench-api: DELETE interactions (Postgres)", flush=True)
    phases["delete"] = run_load(
        HOST, app_port, deletes, auth, max_requests=len(pairs), keep_bodies=True, **common
    )
    return phases


def _report(
    phases: dict[str, LoadResult], *, accepted: int, found: int, duration: float, connections: int
) -> dict[str, Any]:
    bare_get, recs, delete = phases["bare_get"], phases["recommendations"], phases["delete"]
    ratios = {
        "get_throughput_ratio": recs.throughput / bare_get.throughput,
        "get_p99_ratio": recs.percentile(99) / bare_get.percentile(99),
        "delete_throughput_ratio": delete.throughput / bare_get.throughput,
        "delete_vs_bare_delete_ratio": delete.throughput / phases["bare_delete"].throughput,
    }
    met = {
        "get_throughput_ratio": ratios["get_throughput_ratio"] >= TARGETS["get_throughput_ratio"],
        "get_p99_ratio": ratios["get_p99_ratio"] <= TARGETS["get_p99_ratio"],
        "delete_throughput_ratio": ratios["delete_throughput_ratio"]
        >= TARGETS["delete_throughput_ratio"],
        "every_202_recorded": found == accepted and accepted > 0,
    }
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "settings": {"duration_s": duration, "connections": connections, "uvicorn_workers": 1},
        "phases": {k: v.summary() for k, v in phases.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": TARGETS,
        "deletes": {"accepted_202": accepted, "found_in_db": found},
        "met": met,
    }


def format_report(rep: dict[str, Any]) -> str:
    lines = ["| phase | req/s | p50 ms | p99 ms | statuses |", "|---|---:|---:|---:|---|"]
    for name, p in rep["phases"].items():
        lines.append(
            f"| {name} | {p['throughput_rps']:.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} "
            f"| {p['status_counts']} |"
        )
    r, t, m = rep["ratios"], rep["targets"], rep["met"]

    def verdict(name: str) -> str:
        return "met" if m[name] else "MISSED"

    lines += [
        "",
        f"- GET recommendations throughput / bare: {r['get_throughput_ratio']:.2f} "
        f"(target >= {t['get_throughput_ratio']}): {verdict('get_throughput_ratio')}",
        f"- GET recommendations p99 / bare p99: {r['get_p99_ratio']:.2f} "
        f"(target <= {t['get_p99_ratio']}): {verdict('get_p99_ratio')}",
        f"- DELETE (Postgres) throughput / bare: {r['delete_throughput_ratio']:.2f} "
        f"(target >= {t['delete_throughput_ratio']}): "
        f"{verdict('delete_throughput_ratio')}"
        f" (vs a bare DELETE with the same body: {r['delete_vs_bare_delete_ratio']:.2f})",
        f"- every 202 recorded: {rep['deletes']['found_in_db']} of "
        f"{rep['deletes']['accepted_202']} found in the database: "
        f"{verdict('every_202_recorded')}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="eraser bench-api", description=__doc__)
    p.add_argument("--dataset", type=Path, default=Path("data/ml-latest-small"))
    p.add_argument("--out", type=Path, default=Path("runs/bench-api"))
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args(argv)
    rep = run_api_bench(
        dataset=args.dataset, out=args.out, duration=args.duration, connections=args.connections
    )
    (args.out / "api-load.json").write_text(json.dumps(rep, indent=1) + "\n")
    print(format_report(rep))
    print(f"wrote {args.out / 'api-load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
