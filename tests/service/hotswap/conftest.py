"""Hot-swap fixtures: the shared Redis under a per-test key prefix, a throwaway Redis server
that tests may kill and restart, tiny checkpoints and a holder to swap them into."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from recsys.checkpoint import read_meta
from service.db.models import ModelVersion
from service.recommendations.serving import ModelHolder, ServedModel, build_served
from service.settings import Settings
from tests.service.recommendations.kit import Checkpoints, checkpoints, restore_torch_threads

__all__ = ["checkpoints", "restore_torch_threads"]

SHARED_REDIS = "redis://127.0.0.1:6379/0"
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    t0 = time.perf_counter()
    while not condition():
        assert time.perf_counter() - t0 < timeout, f"timed out after {timeout}s waiting: {what}"
        time.sleep(0.005)
    return time.perf_counter() - t0


def version_row(version: str, path: Path) -> ModelVersion:
    """What a publisher reads of a registered version, without a database."""
    return ModelVersion(
        version=version, location=str(path), sha256=str(read_meta(path)["weights_sha256"])
    )


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; its keys are deleted after."""
    name = f"rtbf-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(SHARED_REDIS)
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def holder() -> ModelHolder:
    return ModelHolder(Settings(database_url="sqlite://", environment="test"))


@pytest.fixture
def served_a(checkpoints: Checkpoints) -> ServedModel:
    return build_served("A", checkpoints.v1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A ``redis-server`` of this test's own, without persistence: stop() and start() are a
    real outage and a real restart (empty, like a Redis without a volume)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(up, what="the throwaway redis-server to start")
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
