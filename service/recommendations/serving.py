"""The in-memory served model of this replica, its hot reload, and the popularity fallback.

Readers take ``holder.current`` once per request; a reload builds a complete ``ServedModel``
first and swaps it in with one reference assignment, so a response never mixes versions.
Versions arrive by polling the database's active version, or by a publish (``swap_in``, see
``service.hotswap``); once a replica follows the Redis feed, only publishes move it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import cast

import torch
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker
from torch import nn

from recsys.checkpoint import load_checkpoint
from recsys.models.base import Recommender
from service.db.models import Interaction, Item, ModelVersion, utcnow
from service.model_versions.service import get_active_version
from service.settings import Settings

log = logging.getLogger(__name__)

POPULARITY_TTL_SECONDS = 30.0
FAILED_RETRY_SECONDS = 60.0
# after a publish swapped a model in, the database poll leaves it alone this long: a hot-swap
# publishes before its transaction commits, and the poll must not reload the old version
PUBLISH_PIN_SECONDS = 10.0
# popularity is cached this many items beyond max_k, so a cold-start user's own items can be
# filtered out of the cached list without another query
POPULARITY_SLACK = 1000

Scored = list[tuple[str, float]]


@dataclass(frozen=True)
class ServedModel:
    """One complete model version: weights in eval mode plus its id maps."""

    version: str
    model: nn.Module
    user_index: dict[str, int]
    item_ids: list[str]
    item_index: dict[str, int]

    def has_user(self, user: str) -> bool:
        return user in self.user_index

    def top_k(self, user: str, exclude: set[str], k: int) -> Scored:
        """The ``k`` best (item, score) pairs for ``user``, never an item in ``exclude``."""
        dense = self.user_index[user]
        masked = {self.item_index[e] for e in exclude if e in self.item_index}
        n = min(k, len(self.item_ids) - len(masked))
        if n <= 0:
            return []
        with torch.inference_mode():
            scores = cast(Recommender, self.model).score_users(torch.tensor([dense]))[0]
            if masked:
                scores[torch.tensor(list(masked))] = float("-inf")
            values, index = torch.topk(scores, n)
        return [
            (self.item_ids[i], float(v))
            for i, v in zip(index.tolist(), values.tolist(), strict=True)
        ]


def build_served(version: str, location: str | Path) -> ServedModel:
    """Load a checkpoint into a ``ServedModel``; raises whatever loading raises."""
    loaded = load_checkpoint(location)
    model = loaded.model.eval()
    # a checkpoint saved without id maps uses its dense ids as external ids
    n_users, n_items = int(loaded.meta["n_users"]), int(loaded.meta["n_items"])
    users = loaded.user_ids.to_list() if loaded.user_ids else [str(u) for u in range(n_users)]
    items = loaded.item_ids.to_list() if loaded.item_ids else [str(i) for i in range(n_items)]
    for p in model.parameters():
        p.requires_grad_(False)
    return ServedModel(
        version=version,
        model=model,
        user_index={u: n for n, u in enumerate(users)},
        item_ids=items,
        item_index={i: n for n, i in enumerate(items)},
    )


class ModelHolder:
    """This replica's served model (``current``), reloaded when the active version changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current: ServedModel | None = None
        # when ``current`` was last replaced (UTC), for ops views and tests
        self.switched_at: datetime | None = None
        self.switches = 0
        # serialises checks and loads; readers never take it
        self._lock = threading.Lock()
        # makes "is a publish pinned?" and the swap one step; held for microseconds
        self._swap_lock = threading.Lock()
        self._pinned_until = 0.0
        self._next_check = 0.0
        # a version that failed to load is retried only after FAILED_RETRY_SECONDS (a corrupt
        # checkpoint would otherwise be re-hashed every poll); another activation is loaded
        self._failed: tuple[str, float] | None = None
        self._popular: tuple[float, Scored] | None = None

    def try_load_active(self, sessions: sessionmaker[Session]) -> bool:
        """Load the active version at startup. Never raises: on failure the old model stays."""
        # one user's matvec is fastest single-threaded, and threads would contend across
        # concurrent requests
        torch.set_num_threads(1)
        self._next_check = time.monotonic() + self.settings.model_poll_seconds
        try:
            with sessions() as session:
                row = get_active_version(session)
                target = None if row is None else (row.version, row.location)
        except Exception:
            log.exception("cannot read the active model version; serving without a change")
            return False
        if target is None:
            log.warning("no active model version; serving popularity lists")
            return False
        with self._lock:
            return self._load_logged(*target)

    def load(self, row: ModelVersion) -> ServedModel:
        """Build the served model of ``row`` and swap it in; raises if it cannot be loaded."""
        served = build_served(row.version, row.location)
        with self._swap_lock:
            self._swap(served)
        return served

    @property
    def served_version(self) -> str | None:
        served = self.current
        return served.version if served is not None else None

    def swap_in(self, served: ServedModel, *, pin_seconds: float = PUBLISH_PIN_SECONDS) -> None:
        """Serve a model built elsewhere (a publish); the database poll then leaves it alone
        for ``pin_seconds``."""
        with self._swap_lock:
            self._pinned_until = max(self._pinned_until, time.monotonic() + pin_seconds)
            self._swap(served)

    def follow_feed(self) -> None:
        """Take versions only from publishes from now on (the Redis pointer is the truth):
        the database poll stops, so the two sources never fight over the served version."""
        with self._swap_lock:
            self._pinned_until = math.inf

    def _pinned(self) -> bool:
        return time.monotonic() < self._pinned_until

    def _swap(self, served: ServedModel) -> None:
        # the one reference assignment readers observe: all of the old version or all of the new
        self.current = served
        self.switched_at = utcnow()
        self.switches += 1
        self._failed = None

    def maybe_refresh(self, sessions: sessionmaker[Session], *, background: bool = False) -> bool:
        """At most every ``model_poll_seconds``, load the active version if it changed.

        Cheap when not due (one clock read). With ``background`` the load runs in a thread
        so the calling request is not delayed by it. Returns whether a new model was swapped
        in by this call. Never raises.
        """
        if time.monotonic() < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = time.monotonic() + self.settings.model_poll_seconds
            target = self._changed_active(sessions)
        except BaseException:
            self._lock.release()
            raise
        if target is None:
            self._lock.release()
            return False
        if not background:
            try:
                return self._load_logged(*target)
            finally:
                self._lock.release()

        def run() -> None:
            try:
                self._load_logged(*target)
            finally:
                self._lock.release()

        try:
            threading.Thread(target=run, name="model-reload", daemon=True).start()
        except RuntimeError:  # no thread could be started: the next poll tries again
            self._lock.release()
        return False

    def _changed_active(self, sessions: sessionmaker[Session]) -> tuple[str, str] | None:
        """(version, location) of the active version when this replica should load it."""
        try:
            with sessions() as session:
                row = get_active_version(session)
                if row is None:
                    return None
                target = (row.version, row.location)
        except Exception:
            log.exception("cannot check the active model version; keeping the served one")
            return None
        served, failed = self.current, self._failed
        if served is not None and served.version == target[0]:
            return None
        if self._pinned():
            return None
        if failed is not None and failed[0] == target[0] and time.monotonic() < failed[1]:
            return None
        return target

    def _load_logged(self, version: str, location: str) -> bool:
        try:
            t0 = time.perf_counter()
            served = build_served(version, location)
        except Exception:
            self._failed = (version, time.monotonic() + FAILED_RETRY_SECONDS)
            old = self.current.version if self.current else None
            log.exception(
                "cannot load model version %s from %s; still serving %s", version, location, old
            )
            return False
        with self._swap_lock:
            # a publish may have swapped in a newer model while this one loaded
            if self._pinned() and self.current is not None:
                log.info("not loading %s: serving the published %s", version, self.current.version)
                return False
            self._swap(served)
        log.info("serving model version %s (%.2fs to load)", version, time.perf_counter() - t0)
        return True

    def popular(self, conn: Connection) -> Scored:
        """Items by interaction count, most first (ties by id), cached for a while."""
        cached = self._popular
        now = time.monotonic()
        if cached is not None and now - cached[0] < POPULARITY_TTL_SECONDS:
            return cached[1]
        count = func.count()
        stmt = (
            select(Item.external_id, count)
            .join(Interaction, Interaction.item_id == Item.id)
            .group_by(Item.id, Item.external_id)
            .order_by(count.desc(), Item.external_id)
            .limit(self.settings.max_k + POPULARITY_SLACK)
        )
        items = [(str(ext), float(n)) for ext, n in conn.execute(stmt)]
        self._popular = (now, items)
        return items

    def clear_popular(self) -> None:
        """Drop the cached popularity list (tests, admin tools)."""
        self._popular = None
