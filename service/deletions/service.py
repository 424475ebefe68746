"""Accepting, reading and cancelling deletion requests. Nothing here commits: the endpoint
commits once and only then answers 202, so an accepted request is always a durable one."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.db.models import DeletionRequest, RequestScope, RequestStatus, User, utcnow
from service.deletions import fast_path
from service.deletions import repository as repo
from service.errors import Conflict, NotFound, PayloadTooLarge
from service.paging import encode_cursor
from service.webhooks import outbox


@dataclass
class Accepted:
    request: DeletionRequest
    user_external_id: str
    replayed: bool  # True: an earlier request with the same Idempotency-Key and body


def items_digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(items)).encode()).hexdigest()


def _fingerprint(scope: str, user: str, items: list[str], callback_url: str | None) -> str:
    canonical = json.dumps([scope, user, sorted(items), callback_url], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(
    session: Session, principal: Principal, key: str | None, fingerprint: str
) -> Accepted | None:
    """The earlier request for this Idempotency-Key (same body), 409 if the body differs."""
    if key is None:
        return None
    earlier = repo.get_by_idempotency_key(session, principal.key_id, key)
    if earlier is None:
        return None
    if earlier.fingerprint != fingerprint:
        raise Conflict(
            "this Idempotency-Key was already used with a different request body; "
            "use a new key for a new request",
            details={"idempotency_key": key, "request_id": str(earlier.id)},
        )
    user = session.get(User, earlier.user_id)
    return Accepted(earlier, user.external_id if user else "", replayed=True)


def _user(session: Session, external_id: str) -> User:
    user = repo.get_user_by_external_id(session, external_id)
    if user is None:
        raise NotFound(f"unknown user {external_id!r}", details={"user": external_id})
    if user.deleted_at is not None:
        earlier = repo.get_user_deletion(session, user.id)
        raise Conflict(
            f"user {external_id!r} is already deleted; nothing of theirs is left to delete",
            details={"user": external_id, "request_id": str(earlier.id) if earlier else None},
        )
    return user


def _record(
    session: Session,
    principal: Principal,
    *,
    scope: RequestScope,
    user: User,
    items: list[str],
    moved: list[repo.MovedRow],
    idempotency_key: str | None,
    fingerprint: str,
    callback_url: str | None,
) -> DeletionRequest:
    request = DeletionRequest(
        id=uuid.uuid4(),
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        api_key_id=principal.key_id,
        scope=scope,
        user_id=user.id,
        items=sorted(items),
        item_count=len(items),
        items_sha256=items_digest(items),
        status=RequestStatus.pending,
        created_at=utcnow(),
        callback_url=callback_url,
    )
    session.add(request)
    session.flush()
    repo.hold_rows(session, request.id, user.id, moved)
    outbox.enqueue(session, request, user=user.external_id)
    return request


def _record_or_replay(
    session: Session,
    principal: Principal,
    *,
    scope: RequestScope,
    user: User,
    user_external_id: str,
    items: list[str],
    moved: list[repo.MovedRow],
    idempotency_key: str | None,
    fingerprint: str,
    callback_url: str | None,
) -> Accepted:
    """Record the request; a twin with the same Idempotency-Key that committed first turns
    this into its replay (the unique constraint fires at the insert)."""
    try:
        request = _record(
            session,
            principal,
            scope=scope,
            user=user,
            items=items,
            moved=moved,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            callback_url=callback_url,
        )
    except IntegrityError:
        replay = _after_race(session, principal, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay
    return Accepted(request, user_external_id, replayed=False)


def _after_race(
    session: Session, principal: Principal, key: str | None, fingerprint: str
) -> Accepted | None:
    """A concurrent request with the same Idempotency-Key won: answer as its replay."""
    session.rollback()
    return _replay(session, principal, key, fingerprint)


def request_interaction_deletion(
    session: Session,
    principal: Principal,
    *,
    user_external_id: str,
    items: list[str],
    max_items: int,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
) -> Accepted:
    """Move the user's rows for ``items`` out of ``interactions`` and record the request."""
    items = list(dict.fromkeys(items))
    if len(items) > max_items:
        raise PayloadTooLarge(
            f"{len(items)} items in one request; the maximum is {max_items}: split the request",
            details={"items": len(items), "max_items": max_items},
        )
    fp = _fingerprint(RequestScope.interactions, user_external_id, items, callback_url)
    if session.get_bind().dialect.name == "postgresql":
        fast = _accept_in_one_statement(
            session, principal, user_external_id, items, idempotency_key, fp, callback_url
        )
        if fast is not None:
            return fast
    replay = _replay(session, principal, idempotency_key, fp)
    if replay is not None:
        return replay
    user = _user(session, user_external_id)
    item_ids = repo.get_items_by_external_ids(session, items)
    unknown = [i for i in items if i not in item_ids]
    if unknown:
        raise NotFound(
            f"unknown item(s): {', '.join(map(repr, unknown[:10]))}",
            details={"items": unknown},
        )
    moved = repo.delete_interactions_returning(session, user.id, list(item_ids.values()))
    missing = set(item_ids.values()) - {r[0] for r in moved}
    if missing:
        # a concurrent twin may have moved them first: then this is its replay
        replay = _after_race(session, principal, idempotency_key, fp)
        if replay is not None:
            return replay
        _raise_missing(session, user, user_external_id, item_ids, missing)
    return _record_or_replay(
        session,
        principal,
        scope=RequestScope.interactions,
        user=user,
        user_external_id=user_external_id,
        items=items,
        moved=moved,
        idempotency_key=idempotency_key,
        fingerprint=fp,
        callback_url=callback_url,
    )


def _accept_in_one_statement(
    session: Session,
    principal: Principal,
    user_external_id: str,
    items: list[str],
    idempotency_key: str | None,
    fingerprint: str,
    callback_url: str | None,
) -> Accepted | None:
    """The common case on Postgres in one round trip; None: take the general path."""
    request = DeletionRequest(
        id=uuid.uuid4(),
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        api_key_id=principal.key_id,
        scope=RequestScope.interactions,
        items=sorted(items),
        item_count=len(items),
        items_sha256=items_digest(items),
        status=RequestStatus.pending,
        created_at=utcnow(),
        callback_url=callback_url,
    )
    done = fast_path.try_accept(
        session,
        request_id=request.id,
        user_external_id=user_external_id,
        items=items,
        api_key_id=principal.key_id,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        items_sha256=request.items_sha256,
        created_at=request.created_at,
        callback_url=callback_url,
    )
    if done is None:
        return None
    request.user_id = done.user_id  # a transient copy of the inserted row, for the response
    outbox.enqueue(session, request, user=user_external_id)  # same transaction as the row
    return Accepted(request, user_external_id, replayed=False)


def _raise_missing(
    session: Session, user: User, user_ext: str, item_ids: dict[str, int], missing: set[int]
) -> None:
    by_id = {v: k for k, v in item_ids.items()}
    held = repo.held_by(session, user.id, sorted(missing))
    if held:
        raise Conflict(
            f"user {user_ext!r}: item(s) already deleted by an earlier request: "
            + ", ".join(repr(by_id[i]) for i in sorted(held)[:10]),
            details={"items": {by_id[i]: str(r) for i, r in held.items()}},
        )
    absent = sorted(by_id[i] for i in missing)
    raise NotFound(
        f"user {user_ext!r} has no interaction with item(s): {', '.join(map(repr, absent[:10]))}",
        details={"user": user_ext, "items": absent},
    )


def request_user_deletion(
    session: Session,
    principal: Principal,
    *,
    user_external_id: str,
    idempotency_key: str | None = None,
    callback_url: str | None = None,
) -> Accepted:
    """Move every row of the user out of ``interactions``, mark the user deleted, record it."""
    fp = _fingerprint(RequestScope.user, user_external_id, [], callback_url)
    replay = _replay(session, principal, idempotency_key, fp)
    if replay is not None:
        return replay
    user = _user(session, user_external_id)
    # lock the user row: two concurrent whole-user deletions serialise here
    session.refresh(user, with_for_update=True)
    if user.deleted_at is not None:
        replay = _after_race(session, principal, idempotency_key, fp)
        if replay is not None:
            return replay
        _user(session, user_external_id)  # raises the 409 naming the earlier request
    moved = repo.delete_interactions_returning(session, user.id, None)
    items = repo.get_item_external_ids(session, [r[0] for r in moved]) if moved else []
    user.deleted_at = utcnow()
    return _record_or_replay(
        session,
        principal,
        scope=RequestScope.user,
        user=user,
        user_external_id=user_external_id,
        items=items,
        moved=moved,
        idempotency_key=idempotency_key,
        fingerprint=fp,
        callback_url=callback_url,
    )


def get_request(session: Session, principal: Principal, request_id: uuid.UUID) -> Accepted:
    """A request the caller may see (its own; admins see all), else 404."""
    request = session.get(DeletionRequest, request_id)
    if request is None or not _visible(principal, request):
        raise NotFound(f"no deletion request {str(request_id)!r}", details={"id": str(request_id)})
    user = session.get(User, request.user_id)
    return Accepted(request, user.external_id if user else "", replayed=False)


def _visible(principal: Principal, request: DeletionRequest) -> bool:
    return "admin" in principal.scopes or request.api_key_id == principal.key_id


def list_requests(
    session: Session,
    principal: Principal,
    *,
    status: RequestStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Accepted], str | None]:
    rows = repo.list_requests(
        session,
        api_key_id=None if "admin" in principal.scopes else principal.key_id,
        status=status,
        limit=limit + 1,
        cursor=cursor,
    )
    page = [Accepted(r, ext, replayed=False) for r, ext in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1][0]
        next_cursor = encode_cursor(last.created_at, last.id)
    return page, next_cursor


def cancel_request(session: Session, principal: Principal, request_id: uuid.UUID) -> Accepted:
    """Cancel a pending request: its rows go back into ``interactions``."""
    found = get_request(session, principal, request_id)
    request = repo.get_request_for_update(session, found.request.id)
    assert request is not None
    session.refresh(request)
    if request.status != RequestStatus.pending:
        raise Conflict(
            f"request {str(request_id)!r} is {request.status}; only pending requests can be "
            "cancelled",
            details={"id": str(request_id), "status": request.status},
        )
    repo.restore_held_rows(session, request.id)
    if request.scope == RequestScope.user:
        repo.clear_user_deleted(session, request.user_id)
    request.status = RequestStatus.cancelled
    request.cancelled_at = utcnow()
    outbox.enqueue(session, request, user=found.user_external_id)
    session.flush()
    return Accepted(request, found.user_external_id, replayed=False)
