"""Bearer keys: 401 for missing/unknown/revoked, 403 for a missing scope, hashing, rate limit."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.auth.keys import check_scopes, hash_secret, parse_key
from service.auth.service import create_key, revoke_key
from service.db.models import ApiKey
from tests.service.conftest import Backend, KeyMaker

URL = "/v1/deletions"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Bearer rtbf_0123456789ab.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
    ],
)
def test_missing_malformed_or_unknown_key_is_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    r = client.get(URL, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_missing_scope_is_403_naming_it(client: TestClient, make_key: KeyMaker) -> None:
    r = client.get(URL, headers=make_key("recommendations:read"))
    assert r.status_code == 403
    assert r.json()["error"]["details"]["required_scope"] == "deletions:write"


def test_admin_scope_grants_everything(client: TestClient, make_key: KeyMaker) -> None:
    assert client.get(URL, headers=make_key("admin")).status_code == 200


def test_keys_are_stored_hashed_and_revocation_takes_effect(backend: Backend, app: FastAPI) -> None:
    app.state.key_cache.ttl = 0  # no cache: revocation is visible on the next request
    with backend.sessions() as s:
        row, full = create_key(s, "svc", ["deletions:write"])
        s.commit()
        parsed = parse_key(full)
        assert parsed is not None and parsed[0] == row.id
        stored = s.scalars(select(ApiKey).where(ApiKey.id == row.id)).one()
        assert stored.secret_hash == hash_secret(parsed[1]) and parsed[1] not in stored.secret_hash
    headers = {"Authorization": f"Bearer {full}"}
    with TestClient(app) as c:
        assert c.get(URL, headers=headers).status_code == 200
        with backend.sessions() as s:
            revoke_key(s, row.id)
            s.commit()
        assert c.get(URL, headers=headers).status_code == 401


def test_wrong_secret_for_a_known_key_id_is_401(client: TestClient, backend: Backend) -> None:
    with backend.sessions() as s:
        row, _ = create_key(s, "svc", ["admin"])
        s.commit()
    forged = f"rtbf_{row.id}." + "B" * 43
    assert client.get(URL, headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_scopes_are_validated() -> None:
    assert check_scopes(["admin", "admin"]) == ["admin"]
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        check_scopes(["root"])
    with pytest.raises(ValueError, match="at least one scope"):
        check_scopes([])


def test_rate_limit_answers_429_with_retry_after_per_key(app: FastAPI, make_key: KeyMaker) -> None:
    app.state.rate_limiter.rate = 0.5
    app.state.rate_limiter.burst = 3
    a, b = make_key("deletions:write"), make_key("deletions:write")
    with TestClient(app) as c:
        codes = [c.get(URL, headers=a).status_code for _ in range(4)]
        limited = c.get(URL, headers=a)
        other = c.get(URL, headers=b)
    assert codes == [200, 200, 200, 429]
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert other.status_code == 200  # buckets are per key


def test_secrets_never_reach_logs_or_responses(
    client: TestClient, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with backend.sessions() as s:
        _, full = create_key(s, "svc", ["deletions:write"])
        s.commit()
    secret = full.split(".", 1)[1]
    bodies = [
        client.get(URL, headers={"Authorization": f"Bearer {full}"}).text,
        client.get(URL, headers={"Authorization": f"Bearer {full}x"}).text,
        client.get(URL, headers={"Authorization": f"Bearer {full[:-1]}"}).text,
    ]
    assert all(secret[:20] not in b for b in bodies)
    assert secret[:20] not in caplog.text
