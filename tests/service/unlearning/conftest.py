"""Fixtures of the unlearning tests: a tiny trained MF registered as the active version,
its training rows in the database, a deletions principal and a recording publisher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal, create_key
from service.db.models import DeletionRequest, ModelVersion
from service.deletions import service as deletions
from service.model_versions.service import register_version
from service.settings import Settings
from tests.service.conftest import Backend, add_interactions
from tests.service.recommendations.kit import Checkpoints, train_checkpoints

# AltEraser's stopping rule for the tiny model; the [mf] section is deliberately not the
# checkpoint's: the job must take the objective from the checkpoint it unlearns from
CONFIG = """
[mf]
dim = 64
w0 = 1.0
[train]
tol = 1e-7
max_epochs = 300
[unlearn]
max_rounds = 50
tol = 1e-5
step_tol = 1e-2
"""


class RecordingPublisher:
    """A fake publisher: records each version it is asked to publish; ``fail_first`` is
    raised by the first call (a Redis outage, or a worker killed mid-publish)."""

    def __init__(self, fail_first: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self._fail = fail_first

    def __call__(self, version: ModelVersion) -> None:
        self.calls.append(version.version)
        if self._fail is not None:
            exc, self._fail = self._fail, None
            raise exc


@dataclass
class World:
    backend: Backend
    settings: Settings
    principal: Principal
    ckpt: Checkpoints

    def items_of(self, user: str) -> list[str]:
        return sorted(i for u, i in self.ckpt.rows if u == user)

    def delete_items(self, user: str, items: list[str]) -> str:
        """Accept an interaction deletion the way the endpoint does; its request id."""
        with self.backend.sessions() as s:
            got = deletions.request_interaction_deletion(
                s, self.principal, user_external_id=user, items=items, max_items=1000
            )
            s.commit()
            return str(got.request.id)

    def delete_user(self, user: str) -> str:
        with self.backend.sessions() as s:
            got = deletions.request_user_deletion(s, self.principal, user_external_id=user)
            s.commit()
            return str(got.request.id)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Checkpoints:
    return train_checkpoints(tmp_path_factory.mktemp("unlearning-checkpoints"))


def seed(session: Session, ckpt: Checkpoints, *, active: bool = True) -> Principal:
    add_interactions(session, ckpt.rows)
    if active:
        register_version(session, ckpt.v1, version="v1", origin="trained", activate=True)
    key, _ = create_key(session, "unlearning-test", ["deletions:write"])
    session.commit()
    return Principal(key_id=key.id, name=key.name, scopes=frozenset({"deletions:write"}))


@pytest.fixture
def world(backend: Backend, tiny_checkpoints: Checkpoints, tmp_path: Path) -> World:
    """The checkpoint's training rows in the database, v1 active, a fast AltEraser config."""
    cfg = tmp_path / "unlearn.toml"
    cfg.write_text(CONFIG)
    settings = backend.settings.model_copy(
        update={"model_config_file": cfg, "worker_device": "cpu", "batch_window_seconds": 0.05}
    )
    with backend.sessions() as s:
        principal = seed(s, tiny_checkpoints)
    return World(backend, settings, principal, tiny_checkpoints)


def requests_by_id(session: Session) -> dict[str, DeletionRequest]:
    return {str(r.id): r for r in session.scalars(select(DeletionRequest))}
