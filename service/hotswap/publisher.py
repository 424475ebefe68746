"""Publishing a model version to every API replica: through Redis, or in process.

Redis protocol (``<p>`` = ``settings.redis_prefix``):

- ``<p>:model:<version>``: the version's checkpoint blob (see ``blobs``);
- ``<p>:model:published``: sorted set of versions with a blob, scored by publish time;
- ``<p>:model:current``: the version every replica should serve (the truth);
- channel ``<p>:model:updates``: a notice carrying the version, only a wake-up call.

One Lua script writes the blob, moves the pointer, publishes the notice and drops blobs
beyond the newest ``keep`` (never the current one), atomically: a replica never sees a
pointer to a missing blob, and concurrent publishers cannot delete each other's current.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsys.checkpoint import CheckpointError, read_meta
from service.db.models import ModelVersion
from service.errors import Conflict, Unavailable
from service.hotswap.blobs import pack_checkpoint
from service.recommendations.serving import ModelHolder, build_served
from service.settings import Settings

log = logging.getLogger(__name__)

KEEP_VERSIONS = 5
# names that would collide with the pointer and index keys
RESERVED = ("current", "published")

# KEYS: blob, published index, current pointer. ARGV: version, blob, now, channel, keep,
# blob key prefix. Returns how many old blobs were dropped.
_PUBLISH_LUA = """
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[1])
local stale = redis.call('ZRANGE', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
local dropped = 0
for _, v in ipairs(stale) do
  if v ~= ARGV[1] then
    redis.call('DEL', ARGV[6] .. v)
    redis.call('ZREM', KEYS[2], v)
    dropped = dropped + 1
  end
end
return dropped
"""


class RedisUnavailable(Unavailable):
    """Redis could not be reached or refused the write; nothing was switched."""

    code = "redis_unavailable"


class CheckpointUnreadable(Conflict):
    """The registered checkpoint is missing or corrupt on disk; nothing was switched."""

    code = "checkpoint_unreadable"


def blob_key_prefix(prefix: str) -> str:
    return f"{prefix}:model:"


def blob_key(prefix: str, version: str) -> str:
    return f"{prefix}:model:{version}"


def current_key(prefix: str) -> str:
    return f"{prefix}:model:current"


def published_key(prefix: str) -> str:
    return f"{prefix}:model:published"


def updates_channel(prefix: str) -> str:
    return f"{prefix}:model:updates"


def redis_client(redis_url: str) -> redis.Redis:
    """A client that fails fast when Redis is down (callers retry on their own terms), with
    one immediate retry so a pooled connection broken by a Redis restart is replaced."""
    return redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
    )


class Publisher(Protocol):
    def publish(self, version: ModelVersion) -> None:
        """Make every replica serve ``version``; raises if that could not be started."""
        ...


def _unreadable(row: ModelVersion, exc: Exception) -> CheckpointUnreadable:
    return CheckpointUnreadable(
        f"model version {row.version!r} cannot be published: {exc}",
        details={"version": row.version, "location": row.location},
    )


class RedisPublisher:
    """Publishes through Redis to every replica's ``RedisModelFeed``."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        *,
        keep: int = KEEP_VERSIONS,
        client: redis.Redis | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.prefix = prefix
        self.keep = keep
        self._redis = client or redis_client(redis_url)
        # redis-py re-sends the script body when a restarted Redis lost its script cache
        self._script = self._redis.register_script(_PUBLISH_LUA)

    def publish(self, version: ModelVersion) -> None:
        """Write the blob, move ``current`` to it and notify; raises ``RedisUnavailable``
        when Redis is down (never swallowed: the caller retries or reports it)."""
        name = version.version
        if name in RESERVED:
            raise Conflict(
                f"model version name {name!r} is reserved in Redis; register it under another",
                details={"version": name},
            )
        try:
            blob = pack_checkpoint(name, version.location, expected_sha256=version.sha256)
        except (CheckpointError, OSError) as exc:
            raise _unreadable(version, exc) from exc
        t0 = time.perf_counter()
        try:
            dropped = self._script(
                keys=[
                    blob_key(self.prefix, name),
                    published_key(self.prefix),
                    current_key(self.prefix),
                ],
                args=[
                    name,
                    blob,
                    time.time(),
                    updates_channel(self.prefix),
                    self.keep,
                    blob_key_prefix(self.prefix),
                ],
            )
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"cannot publish model version {name!r}: Redis is unavailable ({exc})",
                details={"version": name},
                headers={"Retry-After": "5"},
            ) from exc
        log.info(
            "published model version %s (%d bytes, %.3fs, %s old blob(s) dropped)",
            name,
            len(blob),
            time.perf_counter() - t0,
            dropped,
        )

    def close(self) -> None:
        self._redis.close()


class InProcessPublisher:
    """Embedded mode: builds the version and swaps it into this process's holder."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def publish(self, version: ModelVersion) -> None:
        try:
            # build_served checks the weights against config.json; this ties config.json to
            # the registry's record of the version
            actual = read_meta(version.location).get("weights_sha256")
            if actual != version.sha256:
                raise CheckpointError(f"weights sha256 {actual} is not the registered one")
            served = build_served(version.version, version.location)
        except (CheckpointError, OSError) as exc:
            raise _unreadable(version, exc) from exc
        self.holder.swap_in(served)
        log.info("serving published model version %s", version.version)


def make_publisher(settings: Settings, holder: ModelHolder) -> Publisher:
    """Redis when ``redis_url`` is set, else this process's holder (embedded mode)."""
    if settings.redis_url:
        return RedisPublisher(settings.redis_url, settings.redis_prefix)
    return InProcessPublisher(holder)
