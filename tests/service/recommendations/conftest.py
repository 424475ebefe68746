"""Fixtures for the serving tests: poll on every request, a small max_k, a seeded model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.app import create_app
from service.recommendations.serving import ModelHolder
from tests.service.conftest import Backend, KeyMaker, add_interactions
from tests.service.recommendations.kit import (
    Checkpoints,
    checkpoints,
    register,
    restore_torch_threads,
)

__all__ = ["checkpoints", "restore_torch_threads"]

MAX_K = 25


@pytest.fixture
def app(backend: Backend) -> FastAPI:
    settings = backend.settings.model_copy(update={"model_poll_seconds": 0.0, "max_k": MAX_K})
    app = create_app(settings, engine=backend.engine)
    app.state.sessions = backend.sessions
    return app


@dataclass
class Live:
    client: TestClient
    app: FastAPI
    reader: dict[str, str]  # headers of a recommendations:read key

    @property
    def holder(self) -> ModelHolder:
        holder: ModelHolder = self.app.state.models
        return holder

    def recs(self, user: str, **params: object) -> dict[str, object]:
        r = self.client.get(f"/v1/users/{user}/recommendations", params=params, headers=self.reader)
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body


@pytest.fixture
def seeded(db: Session, checkpoints: Checkpoints) -> Checkpoints:
    """The training rows in the database and v1 registered as the active version."""
    add_interactions(db, checkpoints.rows)
    register(db, checkpoints.v1, "v1", activate=True)
    return checkpoints


@pytest.fixture
def live(seeded: Checkpoints, app: FastAPI, make_key: KeyMaker) -> Iterator[Live]:
    """A started app (startup loaded v1) and a reader key."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Live(client, app, make_key("recommendations:read"))
