"""API key operations (create, list, revoke) and request authentication with a short cache."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.keys import check_scopes, new_key, parse_key, secret_matches
from service.db.models import ApiKey, utcnow
from service.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True)
class Principal:
    """The caller, as the endpoints see it: never the secret."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        if scope not in self.scopes and "admin" not in self.scopes:
            raise Forbidden(
                f"this API key lacks the scope {scope!r}",
                details={"required_scope": scope, "key_scopes": sorted(self.scopes)},
            )


def create_key(session: Session, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Store a new key (hashed) and return it with the full key string, shown only once."""
    key_id, full, secret_hash = new_key()
    row = ApiKey(id=key_id, name=name, secret_hash=secret_hash, scopes=check_scopes(scopes))
    session.add(row)
    session.flush()
    return row, full


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, key_id: str) -> ApiKey:
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no API key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


def any_admin_key(session: Session) -> bool:
    rows = session.scalars(select(ApiKey).where(ApiKey.revoked_at.is_(None)))
    return any("admin" in r.scopes for r in rows)


class KeyCache:
    """Successful lookups cached for ``ttl`` seconds, so a GET costs no key query;
    a revoked key stops working within ``ttl``."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, str, Principal]] = {}

    def get(self, key_id: str, secret: str) -> Principal | None:
        with self._lock:
            hit = self._entries.get(key_id)
        if hit is None or time.monotonic() - hit[0] > self.ttl:
            return None
        return hit[2] if secret_matches(secret, hit[1]) else None

    def put(self, key_id: str, secret_hash: str, principal: Principal) -> None:
        if self.ttl > 0:
            with self._lock:
                self._entries[key_id] = (time.monotonic(), secret_hash, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _parse_bearer(authorization: str | None) -> tuple[str, str]:
    """(key id, secret) from an ``Authorization: Bearer <key>`` header, or 401 saying why."""
    if not authorization:
        raise Unauthorized(
            "missing Authorization header; send 'Authorization: Bearer <api key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = authorization.partition(" ")
    parsed = parse_key(token.strip()) if scheme.lower() == "bearer" else None
    if parsed is None:
        raise Unauthorized(
            "malformed Authorization header; expected 'Bearer rtbf_<id>.<secret>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return parsed


def authenticate_cached(authorization: str | None, cache: KeyCache) -> Principal | None:
    """The principal from the cache alone (no I/O), or None when a lookup is needed."""
    key_id, secret = _parse_bearer(authorization)
    return cache.get(key_id, secret)


def authenticate(session: Session, authorization: str | None, cache: KeyCache) -> Principal:
    """The principal for an ``Authorization: Bearer <key>`` header, or 401 saying why."""
    key_id, secret = _parse_bearer(authorization)
    cached = cache.get(key_id, secret)
    if cached is not None:
        return cached
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or not secret_matches(secret, row.secret_hash):
        raise Unauthorized("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    principal = Principal(key_id=row.id, name=row.name, scopes=frozenset(row.scopes))
    cache.put(key_id, row.secret_hash, principal)
    return principal
