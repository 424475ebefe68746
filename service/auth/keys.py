"""API key format and hashing. A key is ``rtbf_<id>.<secret>``: the id is stored in clear
(it names the key in lists and logs), the secret only as its SHA-256. Secrets are 256 random
bits, so a fast hash is enough (no password stretching needed)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

PREFIX = "rtbf_"
SCOPES = ("deletions:write", "recommendations:read", "admin")
_KEY_RE = re.compile(r"^rtbf_([0-9a-f]{12})\.([A-Za-z0-9_-]{20,100})$")


def new_key() -> tuple[str, str, str]:
    """(key id, full key to hand out once, secret hash to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"{PREFIX}{key_id}.{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    m = _KEY_RE.match(key)
    return (m.group(1), m.group(2)) if m else None


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """The scopes, validated; ValueError naming the unknown one."""
    out = []
    for s in scopes:
        if s not in SCOPES:
            raise ValueError(f"unknown scope {s!r}; known scopes: {', '.join(SCOPES)}")
        if s not in out:
            out.append(s)
    if not out:
        raise ValueError(f"a key needs at least one scope: {', '.join(SCOPES)}")
    return out
