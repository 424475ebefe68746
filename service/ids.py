"""External ids as the product sends them: 1-255 characters, no control characters (Postgres
cannot store NUL, and no real id contains one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import StringConstraints

ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=ID_PATTERN)]
UserPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=255,
        pattern=ID_PATTERN,
        description="the user's id as the product knows it",
        examples=["42"],
    ),
]
