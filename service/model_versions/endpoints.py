"""Admin reads of the model registry: every version, and the active one vs the served one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from service.deps import Admin, SessionDep
from service.errors import NotFound
from service.model_versions.schemas import CurrentModel, ModelVersionList, ModelVersionOut
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
