"""DELETE a user's interactions or the whole user; read, list and cancel requests."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response

from service.db.models import RequestScope, RequestStatus
from service.deletions import service
from service.deletions.schemas import (
    DeletionOut,
    DeletionPage,
    InteractionDeletionIn,
    UserDeletionIn,
)
from service.deps import DeletionsWriter, SessionDep, SettingsDep, commit
from service.ids import UserPath

router = APIRouter(prefix="/v1", tags=["deletions"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="retry-safe key: the same key and body return the first request (200); "
        "the same key with another body is a 409",
    ),
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing, malformed, unknown or revoked API key"},
    403: {"description": "the key lacks the `deletions:write` scope"},
    404: {"description": "unknown user or item, or the user has no such interaction"},
    409: {"description": "already deleted, or Idempotency-Key reused with another body"},
    422: {"description": "malformed body or parameter (the message names the field)"},
    429: {"description": "rate limit exceeded; see Retry-After"},
    503: {"description": "the database is unreachable; nothing was recorded, retry"},
}


def to_out(accepted: service.Accepted) -> DeletionOut:
    r = accepted.request
    return DeletionOut(
        id=r.id,
        status=RequestStatus(r.status),
        scope=RequestScope(r.scope),
        user=accepted.user_external_id,
        items=r.items,
        item_count=r.item_count,
        items_sha256=r.items_sha256,
        status_url=f"/v1/deletions/{r.id}",
        created_at=r.created_at,
        started_at=r.started_at,
        completed_at=r.completed_at,
        failed_at=r.failed_at,
        cancelled_at=r.cancelled_at,
        model_version=r.model_version,
        failure_reason=r.failure_reason,
        job_id=r.job_id,
        callback_url=r.callback_url,
    )


def _accepted(response: Response, accepted: service.Accepted) -> DeletionOut:
    out = to_out(accepted)
    response.status_code = 200 if accepted.replayed else 202
    response.headers["Location"] = out.status_url
    return out


@router.delete(
    "/users/{user}/interactions",
    status_code=202,
    response_model=DeletionOut,
    summary="Forget some of a user's interactions",
    description="Removes the rows at once (recommendations stop showing the items "
    "immediately) and queues unlearning. 202 only after the request is committed.",
    responses={200: {"description": "Idempotency-Key replay of an earlier request"}, **_ERRORS},
)
def delete_interactions(
    user: UserPath,
    body: Annotated[InteractionDeletionIn, Body()],
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: DeletionsWriter,
    idempotency_key: IdempotencyKey = None,
) -> DeletionOut:
    accepted = service.request_interaction_deletion(
        session,
        principal,
        user_external_id=user,
        items=list(body.items),
        max_items=settings.max_items_per_request,
        idempotency_key=idempotency_key,
        callback_url=str(body.callback_url) if body.callback_url else None,
    )
    commit(session)
    return _accepted(response, accepted)


@router.delete(
    "/users/{user}",
    status_code=202,
    response_model=DeletionOut,
    summary="Forget a user entirely",
    description="Removes all of the user's rows at once; the user gets cold-start "
    "recommendations immediately; unlearning is queued. 202 only after commit.",
    responses={200: {"description": "Idempotency-Key replay of an earlier request"}, **_ERRORS},
)
def delete_user(
    user: UserPath,
    response: Response,
    session: SessionDep,
    principal: DeletionsWriter,
    idempotency_key: IdempotencyKey = None,
    body: Annotated[UserDeletionIn | None, Body()] = None,
) -> DeletionOut:
    callback = body.callback_url if body is not None else None
    accepted = service.request_user_deletion(
        session,
        principal,
        user_external_id=user,
        idempotency_key=idempotency_key,
        callback_url=str(callback) if callback else None,
    )
    commit(session)
    return _accepted(response, accepted)


@router.get(
    "/deletions/{request_id}",
    response_model=DeletionOut,
    summary="A deletion request's status",
    responses={404: {"description": "no such request (or not yours)"}},
)
def get_deletion(
    request_id: uuid.UUID, session: SessionDep, principal: DeletionsWriter
) -> DeletionOut:
    return to_out(service.get_request(session, principal, request_id))


@router.get(
    "/deletions",
    response_model=DeletionPage,
    summary="List deletion requests, newest first",
    description="Keys see their own requests; admin keys see all. Page with `next_cursor`.",
)
def list_deletions(
    session: SessionDep,
    principal: DeletionsWriter,
    status: Annotated[RequestStatus | None, Query(description="only this status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DeletionPage:
    page, next_cursor = service.list_requests(
        session, principal, status=status, limit=limit, cursor=cursor
    )
    return DeletionPage(items=[to_out(a) for a in page], next_cursor=next_cursor)


@router.post(
    "/deletions/{request_id}/cancel",
    response_model=DeletionOut,
    summary="Cancel a pending request",
    description="Only while pending: the rows return to the training data.",
    responses={404: {"description": "no such request"}, 409: {"description": "not pending"}},
)
def cancel_deletion(
    request_id: uuid.UUID, session: SessionDep, principal: DeletionsWriter
) -> DeletionOut:
    accepted = service.cancel_request(session, principal, request_id)
    commit(session)
    return to_out(accepted)
