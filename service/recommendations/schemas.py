"""Response bodies of the recommendations endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["model", "popularity"]


class RecommendedItem(BaseModel):
    item: str = Field(description="external item id")
    score: float = Field(description="model score, or interaction count for popularity lists")
    rank: int = Field(ge=1, description="1 = best")


class Recommendations(BaseModel):
    """A ranked list for one user, computed from exactly one model version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user": "u42",
                    "model_version": "trained-20261128T101500-1a2b3c4d",
                    "source": "model",
                    "items": [
                        {"item": "i7", "score": 0.93, "rank": 1},
                        {"item": "i19", "score": 0.88, "rank": 2},
                    ],
                }
            ]
        }
    )

    user: str = Field(description="external user id, as requested")
    model_version: str | None = Field(
        description="the model version this replica serves; null when none is loaded"
    )
    source: Source = Field(
        description="`model`: personalised scores; `popularity`: cold-start list (deleted "
        "user, user unknown to the model, or no model loaded)"
    )
    items: list[RecommendedItem]
