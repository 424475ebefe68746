"""Admin reads of unlearning jobs: a paged list and one job by id."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from service.db.models import JobStatus
from service.deps import Admin, SessionDep
from service.jobs.schemas import JobOut, JobPage
from service.jobs.service import get_job, list_jobs

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, malformed, unknown or revoked API key"},
    403: {"description": "the key lacks the `admin` scope"},
    429: {"description": "rate limit exceeded; see Retry-After"},
    503: {"description": "the database is unreachable; retry"},
}


@router.get(
    "",
    response_model=JobPage,
    summary="List unlearning jobs, newest first",
    description="Page with `next_cursor`: pass it back as `cursor` until it is null.",
    responses={
        **_AUTH_ERRORS,
        422: {
            "description": "unknown `status` (the message lists the valid ones), `limit` "
            "outside 1..500, or a `cursor` this API did not issue",
            "content": {
                "application/json": {
                    "example": {
                        "error": {
                            "code": "invalid_request",
                            "message": "invalid value for: cursor (pass back next_cursor "
                            "from the previous page)",
                            "details": {
                                "errors": [
                                    {"field": "cursor", "problem": "not a cursor from this API"}
                                ]
                            },
                        }
                    }
                }
            },
        },
    },
)
def get_jobs(
    session: SessionDep,
    _principal: Admin,
    status: Annotated[JobStatus | None, Query(description="only jobs in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=500, description="`next_cursor` of the previous page")
    ] = None,
) -> JobPage:
    rows, next_cursor = list_jobs(session, status=status, limit=limit, cursor=cursor)
    return JobPage(items=[JobOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    summary="One unlearning job",
    responses={
        **_AUTH_ERRORS,
        404: {"description": "no job with this id (the message names it)"},
        422: {"description": "`job_id` is not a UUID"},
    },
)
def get_job_by_id(
    job_id: Annotated[uuid.UUID, Path(description="the job's id")],
    session: SessionDep,
    _principal: Admin,
) -> JobOut:
    return JobOut.model_validate(get_job(session, job_id))
