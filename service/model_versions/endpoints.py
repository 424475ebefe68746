"""Admin endpoints of the model registry: every version, the active one vs the served one,
and hot-swap (publish, roll back or pin a stored version)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from service.deps import Admin, SessionDep, commit
from service.errors import NotFound
from service.hotswap.publisher import Publisher
from service.hotswap.service import hot_swap, restore
from service.model_versions.schemas import (
    CurrentModel,
    HotSwapIn,
    HotSwapOut,
    ModelVersionList,
    ModelVersionOut,
)
from service.model_versions.service import get_active_version, list_versions
from service.recommendations.serving import ModelHolder

router = APIRouter(prefix="/v1/models", tags=["models"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, malformed, unknown or revoked API key"},
    403: {"description": "the key lacks the `admin` scope"},
    429: {"description": "rate limit exceeded; see Retry-After"},
    503: {"description": "the database is unreachable; retry"},
}


def _served_version(request: Request) -> str | None:
    holder: ModelHolder = request.app.state.models
    served = holder.current
    return served.version if served is not None else None


@router.get(
    "",
    response_model=ModelVersionList,
    summary="Registered model versions, newest first",
    responses={**_AUTH_ERRORS, 422: {"description": "`limit` outside 1..1000"}},
)
def get_models(
    request: Request,
    session: SessionDep,
    _principal: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many versions")] = 100,
) -> ModelVersionList:
    rows = list_versions(session, limit=limit)
    return ModelVersionList(
        items=[ModelVersionOut.model_validate(r) for r in rows],
        served_version=_served_version(request),
    )


@router.get(
    "/current",
    response_model=CurrentModel,
    summary="The active model version and the one this replica serves",
    responses={
        **_AUTH_ERRORS,
        404: {
            "description": "no version is active yet",
            "content": {
                "application/json": {
                    "example": {
                        "error": {
                            "code": "not_found",
                            "message": "no model version is active",
                            "details": {"served_version": None},
                        }
                    }
                }
            },
        },
    },
)
def get_current_model(request: Request, session: SessionDep, _principal: Admin) -> CurrentModel:
    row = get_active_version(session)
    served = _served_version(request)
    if row is None:
        raise NotFound("no model version is active", details={"served_version": served})
    return CurrentModel(active=ModelVersionOut.model_validate(row), served_version=served)


def _error(description: str, code: str, message: str) -> dict[str, Any]:
    example = {"error": {"code": code, "message": message, "details": {"version": "v7"}}}
    return {"description": description, "content": {"application/json": {"example": example}}}


@router.post(
    "/hot-swap",
    response_model=HotSwapOut,
    summary="Publish a stored model version to every replica (also rollback and pinning)",
    description="Activates `version` in the registry and publishes it: through Redis to every "
    "API replica, or into this process in the embedded mode. Roll back or pin by hot-swapping "
    "to an older version. The registry changes only if the publish succeeded. Replicas switch "
    "atomically as soon as they receive the notice (or at their next poll of the pointer).",
    responses={
        **_AUTH_ERRORS,
        404: _error("no such version", "not_found", "no model version 'v7'"),
        409: _error(
            "the version's checkpoint is missing or corrupt on disk",
            "checkpoint_unreadable",
            "model version 'v7' cannot be published: ...",
        ),
        422: {"description": "`version` missing, empty or longer than 64 characters"},
        503: _error(
            "Redis (code `redis_unavailable`) or the database is unreachable; nothing changed",
            "redis_unavailable",
            "cannot publish model version 'v7': Redis is unavailable (...)",
        ),
    },
)
def post_hot_swap(
    request: Request, body: HotSwapIn, session: SessionDep, _principal: Admin
) -> HotSwapOut:
    publisher: Publisher = request.app.state.publisher
    swap = hot_swap(session, publisher, body.version, allow_reexposure=body.allow_reexposure)
    try:
        commit(session)
    except Exception:
        restore(publisher, swap)
        raise
    return HotSwapOut(
        version=swap.version,
        published_at=swap.published_at,
        previous_version=swap.previous_version,
    )
