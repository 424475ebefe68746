"""The fault-injection hook pauses only at the named point, and only when asked."""

from __future__ import annotations

import time

import pytest

from service.unlearning.faults import ENV, pause_point


def test_pause_point_sleeps_only_at_the_named_point(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    t0 = time.perf_counter()
    pause_point("after_unlearn")
    assert time.perf_counter() - t0 < 0.05
    monkeypatch.setenv(ENV, "before_publish=0.2, after_unlearn=0")
    t0 = time.perf_counter()
    pause_point("after_unlearn")
    assert time.perf_counter() - t0 < 0.05
    pause_point("before_publish")
    assert time.perf_counter() - t0 >= 0.2
