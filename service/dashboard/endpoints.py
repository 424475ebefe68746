"""``GET /dashboard``: the ops page, server-rendered with Jinja2 (autoescape on).

Auth is HTTP Basic so a browser can open it with its own prompt: any user name (``admin``
by convention) and an admin API key as the password. The password goes through the same
key cache and lookup as ``Authorization: Bearer``; a missing or wrong one gets 401 with a
``WWW-Authenticate: Basic`` challenge, a key without the admin scope 403.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from service.auth.service import KeyCache, Principal, authenticate_cached
from service.dashboard.service import collect
from service.deps import SessionDep, _lookup
from service.errors import Forbidden, Unauthorized
from service.ratelimit import RateLimiter

REALM = 'Basic realm="rtbf dashboard"'
CHALLENGE = {"WWW-Authenticate": REALM}

router = APIRouter(tags=["dashboard"])

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _basic_password(authorization: str | None) -> str:
    """The password of an ``Authorization: Basic`` header, or 401 with the Basic challenge."""
    if not authorization:
        raise Unauthorized("the dashboard needs an admin API key (HTTP Basic)", headers=CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise Unauthorized("use HTTP Basic: user 'admin', password <api key>", headers=CHALLENGE)
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("malformed HTTP Basic credentials", headers=CHALLENGE) from None
    _, sep, password = decoded.partition(":")
    if not sep or not password:
        raise Unauthorized("malformed HTTP Basic credentials", headers=CHALLENGE)
    return password


async def require_dashboard_admin(request: Request) -> Principal:
    """HTTP Basic with an admin API key as the password; the same cache and lookup as
    ``require_scope`` (the password is checked exactly as a bearer key would be)."""
    bearer = f"Bearer {_basic_password(request.headers.get('authorization'))}"
    cache: KeyCache = request.app.state.key_cache
    try:
        principal = authenticate_cached(bearer, cache)
        if principal is None:
            principal = await run_in_threadpool(_lookup, request.app.state.sessions, bearer, cache)
    except Unauthorized as exc:
        # a browser only prompts again on a Basic challenge, never on the bearer one
        raise Unauthorized(exc.message, headers=CHALLENGE) from None
    if "admin" not in principal.scopes:
        raise Forbidden(
            "the dashboard needs an API key with the 'admin' scope",
            details={"required_scope": "admin", "key_scopes": sorted(principal.scopes)},
        )
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(principal.key_id)
    request.state.principal = principal
    return principal


DashboardAdmin = Annotated[Principal, Depends(require_dashboard_admin)]


@router.get(
    "/dashboard",
    response_class=HTMLResponse,
    include_in_schema=False,
    summary="Ops dashboard (HTTP Basic: user admin, password an admin API key)",
)
def dashboard(request: Request, session: SessionDep, _admin: DashboardAdmin) -> HTMLResponse:
    models = request.app.state.models
    feed = request.app.state.model_feed  # in Redis mode it knows every replica's version
    data = collect(
        session,
        served_version=models.served_version,
        switched_at=models.switched_at,
        replicas=feed.replicas() if feed is not None else [],
    )
    html = templates.get_template("dashboard.html").render(d=data)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
