"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.errors import error_body

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers and a model is loaded",
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
    served = request.app.state.models.current
    checks["model"] = f"ok: {served.version}" if served is not None else "no model loaded"
    if all(v.startswith("ok") for v in checks.values()):
        return {"status": "ready", "checks": checks}
    body = error_body("not_ready", "the service is not ready", {"checks": checks})
    return JSONResponse(body, status_code=503)
