"""Each API replica's side of a publish: follow the Redis ``current`` pointer.

A daemon thread subscribes to the updates channel and also re-reads the pointer every
``poll_seconds``: pub/sub drops messages while a replica is down or reconnecting, the pointer
does not. A notice is only a wake-up call; the pointer is read every time, so a late or
out-of-order notice can never move a replica back to an older version. The new model is
built in this thread, off the request path, and swapped in with one reference assignment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis

from recsys.checkpoint import CheckpointError
from service.hotswap.blobs import served_from_blob
from service.hotswap.publisher import blob_key, current_key, redis_client, updates_channel
from service.recommendations.serving import FAILED_RETRY_SECONDS, ModelHolder

log = logging.getLogger(__name__)

BACKOFF_MIN_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 5.0
# the thread wakes at least this often to notice stop(); an idle wake-up is one clock read
WAKE_SECONDS = 0.25
MIN_POLL_SECONDS = 0.05


class RedisModelFeed:
    """Keeps ``holder`` serving the version ``<prefix>:model:current`` points to."""

    def __init__(
        self,
        holder: ModelHolder,
        redis_url: str,
        prefix: str,
        poll_seconds: float,
        *,
        failed_retry_seconds: float = FAILED_RETRY_SECONDS,
        backoff_max_seconds: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self.holder = holder
        self.prefix = prefix
        self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.poll_seconds = max(poll_seconds, MIN_POLL_SECONDS)
        self.failed_retry_seconds = failed_retry_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._redis = redis_client(redis_url)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()
        # a version whose blob failed to load is retried only after failed_retry_seconds
        self._failed: tuple[str, float] | None = None
        self.connected = False
        self.last_error: str | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="model-feed", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._redis.close()

    def heartbeat(self) -> None:
        """Tell the others (the dashboard) which version this replica serves; the key
        expires when the replica stops beating, so dead replicas drop off the list."""
        record = {
            "replica": self.replica_id,
            "version": self.holder.served_version,
            "switched_at": str(self.holder.switched_at) if self.holder.switched_at else None,
            "seen_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        ttl = max(30, int(3 * self.poll_seconds))
        self._redis.set(replica_key(self.prefix, self.replica_id), json.dumps(record), ex=ttl)

    def replicas(self) -> list[dict[str, Any]]:
        """Every live replica's last heartbeat (empty when Redis cannot be read)."""
        out: list[dict[str, Any]] = []
        try:
            for key in self._redis.scan_iter(match=replica_key(self.prefix, "*"), count=100):
                raw = self._redis.get(key)
                if isinstance(raw, bytes | str):
                    out.append(json.loads(raw))
        except (redis.RedisError, OSError, ValueError):
            return []
        return sorted(out, key=lambda r: str(r.get("replica")))

    def sync(self) -> bool:
        """Read the pointer once and load its version if this replica serves another one.
        Returns whether a new model was swapped in; raises ``redis.RedisError`` when Redis
        is down (the old model stays)."""
        try:
            return self._sync()
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                self.heartbeat()

    def _sync(self) -> bool:
        with self._sync_lock:
            raw = self._redis.get(current_key(self.prefix))
            if raw is None:
                return False  # nothing published yet: the database poll stays in charge
            version = raw.decode() if isinstance(raw, bytes) else str(raw)
            # from the first pointer on, only publishes move this replica
            self.holder.follow_feed()
            if version == self.holder.served_version:
                return False
            failed = self._failed
            if failed is not None and failed[0] == version and time.monotonic() < failed[1]:
                return False
            return self._load(version)

    def _load(self, version: str) -> bool:
        t0 = time.perf_counter()
        blob = self._redis.get(blob_key(self.prefix, version))
        try:
            if not isinstance(blob, bytes):
                raise CheckpointError(f"no blob for {version!r} in Redis (expired or pruned)")
            served = served_from_blob(blob, expected_version=version)
        except (CheckpointError, OSError) as exc:
            self._failed = (version, time.monotonic() + self.failed_retry_seconds)
            log.error(
                "cannot load published model version %s: %s; still serving %s",
                version,
                exc,
                self.holder.served_version,
            )
            return False
        self.holder.swap_in(served)
        self._failed = None
        log.info("serving model version %s (%.3fs to fetch and build)", version, _since(t0))
        return True

    def _run(self) -> None:
        backoff = BACKOFF_MIN_SECONDS
        down_since: float | None = None
        while not self._stop.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(updates_channel(self.prefix))
                # whatever was published while we were away is caught up here
                self.sync()
                self.connected, self.last_error = True, None
                if down_since is not None:
                    log.warning("model feed: Redis is back after %.1fs", _since(down_since))
                    down_since = None
                backoff = BACKOFF_MIN_SECONDS
                self._listen(pubsub)
            except (redis.RedisError, OSError) as exc:
                self.connected, self.last_error = False, f"{type(exc).__name__}: {exc}"
                if down_since is None:
                    down_since = time.perf_counter()
                    log.warning(
                        "model feed: Redis unavailable (%s); still serving %s, reconnecting",
                        exc,
                        self.holder.served_version,
                    )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max_seconds)
            except Exception:  # a bug must not end the thread: the replica would go stale
                log.exception("model feed: unexpected error; retrying")
                self._stop.wait(self.backoff_max_seconds)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
        self.connected = False

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        next_poll = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            wait = min(WAKE_SECONDS, max(0.0, next_poll - time.monotonic()))
            message = pubsub.get_message(timeout=wait)
            if message is not None or time.monotonic() >= next_poll:
                self.sync()
                next_poll = time.monotonic() + self.poll_seconds


def replica_key(prefix: str, replica_id: str) -> str:
    return f"{prefix}:replica:{replica_id}"


def _since(t0: float) -> float:
    return time.perf_counter() - t0
