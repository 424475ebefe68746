"""Per-API-key token buckets (per process: each replica enforces its own share)."""

from __future__ import annotations

import math
import threading
import time

from service.errors import RateLimited


class RateLimiter:
    def __init__(self, rate_per_second: float, burst: int) -> None:
        self.rate = rate_per_second
        self.burst = burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise 429 with the seconds until the next one."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return
            self._buckets[key] = (tokens, now)
        wait = (1.0 - tokens) / self.rate
        raise RateLimited(
            f"rate limit of {self.rate:g} requests/s (burst {self.burst}) exceeded for this key",
            details={"retry_after_seconds": round(wait, 3)},
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
