"""Request dependencies as ``Annotated`` aliases: the session, the settings, the caller.

They are ``async`` and do no I/O on the event loop (auth hits the database, in a worker
thread, only when its key cache misses), so a request costs one threadpool hop: the sync
endpoint itself. Each extra sync dependency would add a hop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.auth.service import KeyCache, Principal, authenticate, authenticate_cached
from service.errors import is_db_outage
from service.ratelimit import RateLimiter
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _close(session: Session) -> None:
    try:
        session.close()  # rolls back whatever was not committed
    except Exception as exc:  # the connection may already be gone
        if not is_db_outage(exc):
            raise


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session per request. It never commits: write endpoints call ``commit(session)``
    before answering, so no success status goes out for an uncommitted change."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()  # no I/O until first use
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(_close, session)  # a rollback is I/O: not on the loop
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def commit(session: Session) -> None:
    """The one place an HTTP request commits. A failure propagates (503 when the database
    is unreachable), so the caller never gets a 2xx for an unrecorded change."""
    session.commit()


# documents the bearer scheme in OpenAPI; ``authenticate`` reads the header itself so that a
# malformed header gets our 401 message rather than HTTPBearer's
_bearer = HTTPBearer(auto_error=False, description="API key: `Bearer rtbf_<id>.<secret>`")


def _lookup(
    factory: sessionmaker[Session], authorization: str | None, cache: KeyCache
) -> Principal:
    with factory() as session:
        return authenticate(session, authorization, cache)


def require_scope(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency: authenticate the bearer key, check ``scope``, apply the rate limit."""

    async def dependency(
        request: Request,
        _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        cache: KeyCache = request.app.state.key_cache
        authorization = request.headers.get("authorization")
        principal = authenticate_cached(authorization, cache)
        if principal is None:
            principal = await run_in_threadpool(
                _lookup, request.app.state.sessions, authorization, cache
            )
        principal.require(scope)
        limiter: RateLimiter = request.app.state.rate_limiter
        limiter.check(principal.key_id)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_')}"
    return dependency


DeletionsWriter = Annotated[Principal, Depends(require_scope("deletions:write"))]
RecommendationsReader = Annotated[Principal, Depends(require_scope("recommendations:read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]
