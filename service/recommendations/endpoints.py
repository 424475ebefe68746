"""GET a user's recommendations from the served model, with deleted items suppressed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from service.deps import RecommendationsReader, SessionDep, SettingsDep
from service.recommendations.schemas import Recommendations
from service.recommendations.service import recommend
from service.recommendations.serving import ModelHolder

router = APIRouter(prefix="/v1", tags=["recommendations"])

DEFAULT_K = 20

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, malformed, unknown or revoked API key"},
    403: {"description": "the key lacks the `recommendations:read` scope"},
    404: {
        "description": "unknown user (code `user_not_found`)",
        "content": {
            "application/json": {
                "example": {
                    "error": {
                        "code": "user_not_found",
                        "message": "no user 'u42'",
                        "details": {"user": "u42"},
                    }
                }
            }
        },
    },
    422: {
        "description": "`k` outside 1..max_k (the message names the field)",
        "content": {
            "application/json": {
                "example": {
                    "error": {
                        "code": "invalid_request",
                        "message": "invalid value for: k",
                        "details": {"errors": [{"field": "k", "problem": "k must be at most 100"}]},
                    }
                }
            }
        },
    },
    429: {"description": "rate limit exceeded; see Retry-After"},
    503: {"description": "the database is unreachable; retry"},
}


@router.get(
    "/users/{user}/recommendations",
    response_model=Recommendations,
    summary="Top-k recommendations for a user",
    description="Scores every item with the served model version and returns the best `k`, "
    "never an item the user interacted with or asked to have deleted (deleted items are "
    "suppressed immediately, before unlearning finishes). A user deleted entirely, a user the "
    "model does not know yet, or a replica without a model gets the popularity list "
    "(`source: popularity`).",
    responses=_ERRORS,
)
def get_recommendations(
    request: Request,
    user: Annotated[
        str, Path(min_length=1, max_length=255, description="the user's id as the product knows it")
    ],
    session: SessionDep,
    settings: SettingsDep,
    _principal: RecommendationsReader,
    k: Annotated[
        int | None,
        Query(
            ge=1,
            description=f"how many items: 1..max_k (the `RTBF_MAX_K` setting, 100 by default); "
            f"default {DEFAULT_K}, or max_k when that is smaller",
            openapi_examples={"default": {"value": DEFAULT_K}, "few": {"value": 5}},
        ),
    ] = None,
) -> Response:
    # the upper bound is a runtime setting, so it cannot live in the Query declaration
    if k is not None and k > settings.max_k:
        problem = f"k must be at most {settings.max_k}"
        raise RequestValidationError(
            [{"loc": ("query", "k"), "msg": problem, "type": "less_than_equal"}]
        )
    holder: ModelHolder = request.app.state.models
    # one clock read unless a poll is due; a new version then loads in a background thread
    holder.maybe_refresh(request.app.state.sessions, background=True)
    recs = recommend(session, holder, user, k if k is not None else min(DEFAULT_K, settings.max_k))
    # release the connection here, on this worker thread: the session dependency would
    # otherwise need a second threadpool hop to close it
    session.close()
    # serialised here (pydantic-core) rather than by FastAPI, which would dump, re-validate and
    # serialise the model again in another threadpool hop; response_model still documents it
    return Response(recs.model_dump_json(), media_type="application/json")
