"""ModelHolder and publishes: a published model is not undone by the database poll."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.recommendations.serving import ModelHolder, build_served
from tests.service.conftest import Backend
from tests.service.hotswap.conftest import wait_for
from tests.service.recommendations.kit import Checkpoints, register


def polling_holder(backend: Backend) -> ModelHolder:
    holder = ModelHolder(backend.settings.model_copy(update={"model_poll_seconds": 0.0}))
    assert holder.try_load_active(backend.sessions)
    return holder


def test_the_database_poll_leaves_a_published_model_alone_while_pinned(
    backend: Backend, db: Session, checkpoints: Checkpoints
) -> None:
    # a hot-swap publishes before it commits: the registry still says v1 for a moment
    register(db, checkpoints.v1, "v1", activate=True)
    holder = polling_holder(backend)
    holder.swap_in(build_served("v2", checkpoints.v2), pin_seconds=0.5)
    assert not holder.maybe_refresh(backend.sessions)
    assert holder.served_version == "v2" and holder.switches == 2
    assert holder.switched_at is not None
    # once the pin expires the registry wins again
    wait_for(lambda: holder.maybe_refresh(backend.sessions), timeout=5.0, what="the pin to end")
    assert holder.served_version == "v1"


def test_a_replica_following_the_feed_ignores_the_database(
    backend: Backend, db: Session, checkpoints: Checkpoints
) -> None:
    register(db, checkpoints.v1, "v1", activate=True)
    holder = polling_holder(backend)
    holder.follow_feed()
    register(db, checkpoints.v2, "v2", activate=True)
    assert not holder.maybe_refresh(backend.sessions)
    assert holder.served_version == "v1"
