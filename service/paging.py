"""Opaque keyset cursors over (created_at, id), newest first."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_

from service.errors import AppError


class InvalidCursor(AppError):
    status_code = 422
    code = "invalid_request"


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """(created_at, id) of a cursor from ``encode_cursor``; 422 naming ``cursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), uuid.UUID(str(row_id))
    except (ValueError, TypeError, json.JSONDecodeError):
        raise InvalidCursor(
            "invalid value for: cursor (pass back next_cursor from the previous page)",
            details={"errors": [{"field": "cursor", "problem": "not a cursor from this API"}]},
        ) from None


def older_than(created_col: Any, id_col: Any, cursor: str) -> ColumnElement[bool]:
    """WHERE clause for the page after ``cursor`` in (created_at desc, id desc) order."""
    created, row_id = decode_cursor(cursor)
    return or_(created_col < created, (created_col == created) & (id_col < row_id))
