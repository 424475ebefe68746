"""RedisPublisher + RedisModelFeed against real Redis servers.

Switches are awaited with a deadline, never a fixed sleep. Pub/sub and the pointer poll are
tested apart: a long poll interval proves the notice alone switches a replica; a notice that
is never sent proves the poll alone does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from functools import partial

import pytest
import redis

from service.hotswap.blobs import pack_checkpoint
from service.hotswap.publisher import (
    RedisPublisher,
    RedisUnavailable,
    blob_key,
    current_key,
    published_key,
    updates_channel,
)
from service.hotswap.subscriber import RedisModelFeed
from service.recommendations.serving import ModelHolder, ServedModel, build_served
from service.settings import Settings
from tests.service.hotswap.conftest import SHARED_REDIS, RedisServer, version_row, wait_for
from tests.service.recommendations.kit import Checkpoints

USER = "u5"


@pytest.fixture
def feeds() -> Iterator[list[RedisModelFeed]]:
    """Feeds a test starts; all stopped after it, even when it fails."""
    started: list[RedisModelFeed] = []
    yield started
    for feed in started:
        feed.stop()


def start_feed(
    feeds: list[RedisModelFeed],
    holder: ModelHolder,
    prefix: str,
    *,
    url: str = SHARED_REDIS,
    poll: float = 60.0,
    **kw: float,
) -> RedisModelFeed:
    feed = RedisModelFeed(holder, url, prefix, poll, **kw)
    feeds.append(feed)
    feed.start()
    return feed


def serving(holder: ModelHolder, version: str) -> bool:
    return holder.served_version == version


def test_a_notice_switches_a_replica_serving_a_to_b(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    served_a: ServedModel,
    prefix: str,
    feeds: list[RedisModelFeed],
) -> None:
    holder.swap_in(served_a)
    client = redis.Redis.from_url(SHARED_REDIS)
    publisher = RedisPublisher(SHARED_REDIS, prefix)
    publisher.publish(version_row("A", checkpoints.v1))
    # a long poll interval: only the pub/sub notice can switch it within the deadline
    feed = start_feed(feeds, holder, prefix, poll=600.0)
    wait_for(lambda: feed.connected, what="the feed to connect")
    assert holder.current is served_a  # the pointer names what it already serves: no reload

    listener = client.pubsub()
    listener.subscribe(updates_channel(prefix))
    t0 = time.perf_counter()
    publisher.publish(version_row("B", checkpoints.v2))
    latency = wait_for(lambda: serving(holder, "B"), what="the notice to switch A -> B")
    print(f"switch latency after publish: {latency * 1000:.1f} ms")
    assert time.perf_counter() - t0 < 5.0

    assert client.get(current_key(prefix)) == b"B"
    assert client.get(blob_key(prefix, "B")) == pack_checkpoint("B", checkpoints.v2)
    assert client.zrange(published_key(prefix), 0, -1) == [b"A", b"B"]
    notices = [m for m in iter(lambda: listener.get_message(timeout=1.0), None)]
    assert [m["data"] for m in notices if m["type"] == "message"] == [b"B"]
    listener.close()

    served = holder.current
    assert served is not None and served.version == "B" and not served.model.training
    assert served.top_k(USER, set(), 5) == build_served("B", checkpoints.v2).top_k(USER, set(), 5)
    assert holder.switched_at is not None


def test_the_poll_catches_a_missed_notice(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    served_a: ServedModel,
    prefix: str,
    feeds: list[RedisModelFeed],
) -> None:
    holder.swap_in(served_a)
    feed = start_feed(feeds, holder, prefix, poll=0.2)
    wait_for(lambda: feed.connected, what="the feed to connect")
    # what a publish leaves behind when its notice is lost: blob and pointer, no message
    client = redis.Redis.from_url(SHARED_REDIS)
    client.set(blob_key(prefix, "B"), pack_checkpoint("B", checkpoints.v2))
    client.set(current_key(prefix), "B")
    wait_for(lambda: serving(holder, "B"), timeout=5.0, what="the poll to switch A -> B")


def test_a_replica_started_after_the_publish_catches_up(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    served_a: ServedModel,
    prefix: str,
    feeds: list[RedisModelFeed],
) -> None:
    holder.swap_in(served_a)
    RedisPublisher(SHARED_REDIS, prefix).publish(version_row("B", checkpoints.v2))
    start_feed(feeds, holder, prefix, poll=600.0)
    wait_for(lambda: serving(holder, "B"), what="the startup sync to switch A -> B")


def test_readers_only_ever_see_complete_models(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    served_a: ServedModel,
    prefix: str,
    feeds: list[RedisModelFeed],
) -> None:
    # each version's own answer for USER, from a model built outside the holder
    expected = {
        "A": build_served("A", checkpoints.v1).top_k(USER, set(), 3),
        "B": build_served("B", checkpoints.v2).top_k(USER, set(), 3),
    }
    assert expected["A"] != expected["B"]
    holder.swap_in(served_a)
    feed = start_feed(feeds, holder, prefix, poll=600.0)
    wait_for(lambda: feed.connected, what="the feed to connect")
    publisher = RedisPublisher(SHARED_REDIS, prefix, keep=2)

    stop = threading.Event()
    seen: dict[str, int] = {}
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            served = holder.current  # once per "request", as the endpoint does
            assert served is not None
            got = served.top_k(USER, set(), 3)
            if served.version not in expected or got != expected[served.version]:
                problems.append(f"{served.version}: {got}")
            seen[served.version] = seen.get(served.version, 0) + 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for n in range(6):
            version, path = ("B", checkpoints.v2) if n % 2 == 0 else ("A", checkpoints.v1)
            publisher.publish(version_row(version, path))
            wait_for(partial(serving, holder, version), what=f"switch {n} to {version}")
            time.sleep(0.01)  # let readers run against this version (not a wait for a switch)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not problems, problems[:5]
    assert seen.get("A", 0) > 0 and seen.get("B", 0) > 0
    assert holder.switches == 7  # served_a plus six publishes


def test_old_blobs_are_pruned_but_never_the_current_one(
    checkpoints: Checkpoints, prefix: str
) -> None:
    client = redis.Redis.from_url(SHARED_REDIS)
    publisher = RedisPublisher(SHARED_REDIS, prefix, keep=3)
    for n in range(6):
        publisher.publish(version_row(f"v{n}", checkpoints.v1 if n % 2 else checkpoints.v2))
    assert client.zrange(published_key(prefix), 0, -1) == [b"v3", b"v4", b"v5"]
    assert [n for n in range(6) if client.exists(blob_key(prefix, f"v{n}"))] == [3, 4, 5]
    # rollback to a pruned version: its blob is re-packed from disk and becomes the newest
    publisher.publish(version_row("v0", checkpoints.v2))
    assert client.get(current_key(prefix)) == b"v0"
    assert client.zrange(published_key(prefix), 0, -1) == [b"v4", b"v5", b"v0"]
    assert client.exists(blob_key(prefix, "v0")) and not client.exists(blob_key(prefix, "v3"))

    only = RedisPublisher(SHARED_REDIS, prefix, keep=1)
    only.publish(version_row("v9", checkpoints.v1))
    assert client.zrange(published_key(prefix), 0, -1) == [b"v9"]
    assert client.exists(blob_key(prefix, "v9"))


def test_a_corrupt_blob_in_redis_keeps_the_old_model(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    served_a: ServedModel,
    prefix: str,
    feeds: list[RedisModelFeed],
    caplog: pytest.LogCaptureFixture,
) -> None:
    holder.swap_in(served_a)
    client = redis.Redis.from_url(SHARED_REDIS)
    good = pack_checkpoint("C", checkpoints.v2)
    client.set(blob_key(prefix, "C"), good[:-5] + b"xxxxx")
    client.set(current_key(prefix), "C")
    with caplog.at_level(logging.ERROR, logger="service.hotswap.subscriber"):
        feed = start_feed(feeds, holder, prefix, poll=0.05, failed_retry_seconds=600.0)
        wait_for(lambda: "cannot load published model version C" in caplog.text, what="error")
    assert holder.current is served_a and feed.connected
    # a good publish afterwards goes through
    RedisPublisher(SHARED_REDIS, prefix).publish(version_row("B", checkpoints.v2))
    wait_for(lambda: serving(holder, "B"), what="the next good publish")


def test_publishing_to_a_port_where_nothing_listens_raises(
    checkpoints: Checkpoints, redis_server: RedisServer
) -> None:
    url = redis_server.url
    redis_server.stop()
    publisher = RedisPublisher(url, "p")
    with pytest.raises(RedisUnavailable, match="Redis is unavailable") as info:
        publisher.publish(version_row("B", checkpoints.v2))
    assert info.value.status_code == 503 and info.value.code == "redis_unavailable"


def test_redis_down_keeps_the_old_model_and_the_feed_recovers(
    checkpoints: Checkpoints,
    holder: ModelHolder,
    redis_server: RedisServer,
    feeds: list[RedisModelFeed],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = redis_server.url
    publisher = RedisPublisher(url, "rtbf")
    publisher.publish(version_row("A", checkpoints.v1))
    feed = start_feed(feeds, holder, "rtbf", url=url, poll=0.1, backoff_max_seconds=0.3)
    wait_for(lambda: serving(holder, "A") and feed.connected, what="A served from Redis")
    served_a = holder.current

    with caplog.at_level(logging.WARNING, logger="service.hotswap.subscriber"):
        redis_server.stop()
        with pytest.raises(RedisUnavailable):
            publisher.publish(version_row("B", checkpoints.v2))
        wait_for(lambda: not feed.connected, what="the feed to notice the outage")
        assert "Redis unavailable" in caplog.text
        time.sleep(0.5)  # several failed reconnects: A must still be served throughout
        assert holder.current is served_a

        redis_server.start()  # empty: no persistence, so no pointer until the next publish
        wait_for(lambda: feed.connected, what="the feed to reconnect")
        assert holder.current is served_a
        publisher.publish(version_row("B", checkpoints.v2))  # the job's retry
        wait_for(lambda: serving(holder, "B"), what="B after the restart")
        assert "Redis is back" in caplog.text


def test_every_replica_reports_the_version_it_serves(
    checkpoints: Checkpoints, prefix: str, feeds: list[RedisModelFeed]
) -> None:
    publisher = RedisPublisher(SHARED_REDIS, prefix)
    publisher.publish(version_row("A", checkpoints.v1))
    settings = Settings(database_url="sqlite://", environment="test")
    one, two = ModelHolder(settings), ModelHolder(settings)
    first = start_feed(feeds, one, prefix, poll=0.2)
    start_feed(feeds, two, prefix, poll=0.2)
    wait_for(lambda: serving(one, "A") and serving(two, "A"), what="both replicas on A")

    def reported() -> set[tuple[str, str | None]]:
        return {(r["replica"], r["version"]) for r in first.replicas()}

    wait_for(lambda: {v for _, v in reported()} == {"A"} and len(reported()) == 2,
             what="two heartbeats naming A")  # fmt: skip
    publisher.publish(version_row("B", checkpoints.v2))
    wait_for(lambda: {v for _, v in reported()} == {"B"} and len(reported()) == 2,
             what="both heartbeats naming B")  # fmt: skip
