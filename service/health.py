"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.errors import error_body

router = APIRouter(tags=["health"])

REDIS_PING_TIMEOUT_SECONDS = 0.5


def redis_check(redis_url: str) -> str:
    """PING with a short timeout: ``ok`` or ``unreachable: <error type>``."""
    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=REDIS_PING_TIMEOUT_SECONDS,
        socket_timeout=REDIS_PING_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
        return "ok"
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"
    finally:
        client.close()


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database (and Redis, when configured) answers and a model is loaded",
    responses={503: {"description": "a dependency is down or no model is loaded"}},
)
def readyz(request: Request) -> Any:
    checks: dict[str, str] = {}
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
    settings = request.app.state.settings
    if settings.redis_url:
        checks["redis"] = redis_check(settings.redis_url)
    feed = getattr(request.app.state, "model_feed", None)
    if feed is not None:
        checks["model_feed"] = (
            "ok"
            if feed.connected
            else f"disconnected: {(feed.last_error or 'not connected yet').split(':')[0]}"
        )
    served = request.app.state.models.current
    checks["model"] = f"ok: {served.version}" if served is not None else "no model loaded"
    if all(v.startswith("ok") for v in checks.values()):
        return {"status": "ready", "checks": checks}
    body = error_body("not_ready", "the service is not ready", {"checks": checks})
    return JSONResponse(body, status_code=503)
