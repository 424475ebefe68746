"""Embedded default (no Redis): the app runs jobs in its own thread and publishes into its
own model holder, so `make run` needs nothing but Python."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from tests.e2e.stack import wait_for
from tests.service.conftest import KeyMaker
from tests.service.unlearning.conftest import World


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # threads need real commits
def test_a_delete_is_unlearned_and_served_without_redis(world: World, make_key: KeyMaker) -> None:
    settings = world.settings.model_copy(update={"inprocess_worker": True, "redis_url": None})
    app = create_app(settings, engine=world.backend.engine)
    headers = make_key("admin")
    user = world.ckpt.rows[0][0]
    with TestClient(app) as c:
        assert app.state.worker is not None
        r = c.request(
            "DELETE",
            f"/v1/users/{user}/interactions",
            json={"items": world.items_of(user)[:2]},
            headers=headers,
        )
        assert r.status_code == 202

        def completed() -> dict[str, Any] | None:
            body: dict[str, Any] = c.get(r.json()["status_url"], headers=headers).json()
            return body if body["status"] == "completed" else None

        done = wait_for(completed, timeout=60, what="the in-process job")
        assert done["model_version"] not in (None, "v1")
        wait_for(
            lambda: (
                c.get("/v1/models/current", headers=headers).json()["served_version"]
                == done["model_version"]
            ),
            timeout=10,
            what="the new version served",
        )
    assert not app.state.worker.alive()
