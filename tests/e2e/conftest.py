"""The end-to-end stack fixture: fresh Postgres database, own Redis server, seeded data,
a trained tiny model and an admin key. Tests start workers, beat and replicas themselves."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from service.auth.service import create_key
from service.data_import import import_dataset
from service.db.session import make_engine, make_sessionmaker, session_scope
from service.hotswap.publisher import RedisPublisher
from service.migrate import upgrade_to_head
from service.settings import Settings
from service.training import train_and_register
from tests.e2e.stack import HOST, Stack, free_port, wait_for
from tests.service.conftest import PG_ADMIN, _pg_server_url

TINY_CONFIG = """
[mf]
dim = 8
l2 = 0.1
w0 = 0.1
c = 1.0

[train]
tol = 1e-5
max_epochs = 60

[unlearn]
max_rounds = 10
tol = 1e-5
step_tol = 1e-2
"""


def _ratings(path: Path, users: int = 60, items: int = 120, per_user: int = 15) -> None:
    rng = random.Random(0)
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(users):
        # power-law-ish popularity so the model has something to learn
        picks = {min(int(rng.paretovariate(1.2)) - 1, items - 1) for _ in range(per_user * 3)}
        picks |= set(rng.sample(range(items), per_user // 2))
        lines += [f"u{u},i{i},4.0,{1000 + n}" for n, i in enumerate(sorted(picks)[:per_user])]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """(stack, admin bearer key). The database is dropped and every process stopped after."""
    name = f"rtbf_e2e_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = _pg_server_url(name)
    config, ratings = tmp_path / "tiny.toml", tmp_path / "ratings.csv"
    config.write_text(TINY_CONFIG)
    _ratings(ratings)
    redis_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": f"redis://{HOST}:{redis_port}/0",
        "RTBF_MODEL_DIR": str(tmp_path / "models"),
        "RTBF_MODEL_CONFIG_FILE": str(config),
        "RTBF_BATCH_WINDOW_SECONDS": "0.5",
        "RTBF_MODEL_POLL_SECONDS": "0.5",
        "RTBF_JOB_LEASE_SECONDS": "8",
        "RTBF_WORKER_DEVICE": "cpu",
        "RTBF_RATE_LIMIT_PER_SECOND": "1000",
        "RTBF_RATE_LIMIT_BURST": "100000",
        "OMP_NUM_THREADS": "1",
    }
    settings = Settings(database_url=url, model_dir=tmp_path / "models", model_config_file=config)
    upgrade_to_head(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with session_scope(sessions) as s:
        import_dataset(s, ratings, progress=False)
    with session_scope(sessions) as s:
        trained = train_and_register(s, settings, kind="mf", progress=False)
    with session_scope(sessions) as s:
        _, key = create_key(s, "e2e", ["admin"])
    engine.dispose()
    stack = Stack(tmp_path, env, redis_port)
    stack.redis()
    client = redis.Redis(host=HOST, port=redis_port)
    wait_for(client.ping, timeout=10, what="redis")
    # as `eraser train` does with REDIS_URL set: replicas follow the published pointer
    RedisPublisher(env["REDIS_URL"], settings.redis_prefix).publish(trained)
    try:
        yield stack, key
    finally:
        stack.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
