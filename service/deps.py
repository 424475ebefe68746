"""Request dependencies as ``Annotated`` aliases: the session, the settings, the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.auth.service import KeyCache, Principal, authenticate
from service.errors import is_db_outage
from service.ratelimit import RateLimiter
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request. It never commits: write endpoints call ``commit(session)``
    before answering, so no success status goes out for an uncommitted change."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        try:
            session.rollback()
            session.close()
        except Exception as exc:  # the connection may already be gone
            if not is_db_outage(exc):
                raise


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def commit(session: Session) -> None:
    """The one place an HTTP request commits. A failure propagates (503 when the database
    is unreachable), so the caller never gets a 2xx for an unrecorded change."""
    session.commit()


# documents the bearer scheme in OpenAPI; ``authenticate`` reads the header itself so that a
# malformed header gets our 401 message rather than HTTPBearer's
_bearer = HTTPBearer(auto_error=False, description="API key: `Bearer rtbf_<id>.<secret>`")


def require_scope(scope: str) -> Callable[..., Principal]:
    """A dependency: authenticate the bearer key, check ``scope``, apply the rate limit."""

    def dependency(
        request: Request,
        session: SessionDep,
        _documented: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        cache: KeyCache = request.app.state.key_cache
        authorization = request.headers.get("authorization")
        principal = authenticate(session, authorization, cache)
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
