"""Phase 2 of the pipeline benchmark: hot-swaps under GET traffic, every score checked.

A response counts as "from a partly loaded model" when it names an unknown version, falls
back to popularity, or carries a score that the version it names would not produce.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch

from service.bench.procs import Api, Sample, Traffic, stats, switch_times

K = 10  # items per GET in the hot-swap traffic: every one of their scores is checked
PROBE_USERS = 50  # users the hot-swap traffic asks for


def phase_hot_swap(
    api: Api, sessions: Any, versions: tuple[str, str], *, swaps: int, interval: float,
    connections: int, poll_s: float,
) -> dict[str, Any]:  # fmt: skip
    """Alternate hot-swaps between two versions under GET traffic on both replicas."""
    check = SwapCheck(sessions, versions, PROBE_USERS)
    paths = [f"/v1/users/{u}/recommendations?k={K}" for u in check.users]
    traffic = Traffic(api.urls, paths, api.auth, connections=connections, poll_s=poll_s)
    traffic.start()
    publishes: list[tuple[float, float, str]] = []  # (POST sent, POST returned, version)
    try:
        time.sleep(interval)  # steady traffic on the old version first
        for k in range(swaps):
            target = versions[k % 2]
            sent = time.perf_counter()
            api.hot_swap(api.urls[k % 2], target)
            publishes.append((sent, time.perf_counter(), target))
            time.sleep(max(0.0, sent + interval - time.perf_counter()))
        time.sleep(interval)  # the last switch gets the same window as the others
    finally:
        end = traffic.stop()
    verdicts = check.judge(traffic.samples)
    by_get = switch_times(traffic.versions_seen(), publishes, end, len(api.urls))
    by_poll = switch_times(traffic.polls, publishes, end, len(api.urls))

    def flat(times: list[list[float | None]]) -> tuple[list[float], int]:
        seen = [t for row in times for t in row if t is not None]
        return seen, sum(t is None for row in times for t in row)

    get_times, get_missing = flat(by_get)
    poll_times, poll_missing = flat(by_poll)
    return {
        "versions": list(versions),
        "publishes": [
            {"version": v, "post_s": round(r - s, 3), "switch_get_s": g, "switch_poll_s": p}
            for (s, r, v), g, p in zip(publishes, by_get, by_poll, strict=True)
        ],
        "requests": len(traffic.samples),
        "polls": len(traffic.polls),
        **verdicts,
        "switch_get_s": stats(get_times),
        "switch_get_not_seen": get_missing,
        "switch_poll_s": stats(poll_times),
        "switch_poll_not_seen": poll_missing,
        "probe_users": len(check.users),
    }


class SwapCheck:
    """Probe users' scores under both versions, computed here as a replica computes them
    (``score_users`` on one user's row, one thread), so every score of a response must match
    the version the response names; a model mixing two versions' weights would not.

    Unlearning a few rows moves only part of the score table, so the probes are the users
    whose scores differ most between the two versions: that is where mixing would show."""

    def __init__(self, sessions: Any, versions: tuple[str, str], n_users: int) -> None:
        from service.db.models import ModelVersion
        from service.recommendations.serving import build_served

        torch.set_num_threads(1)  # as the replicas: the same kernels, bit-identical scores
        self.versions = versions
        with sessions() as s:
            served = [build_served(v, s.get(ModelVersion, v).location) for v in versions]
        models: list[Any] = [m.model for m in served]
        common = sorted(set(served[0].user_index) & set(served[1].user_index))
        with torch.inference_mode():
            a, b = (m.score_users(torch.tensor([x.user_index[u] for u in common])) for m, x in
                    zip(models, served, strict=True))  # fmt: skip
            changed = (~torch.isclose(a, b, rtol=1e-5)).sum(dim=1)
            top = torch.argsort(changed, descending=True, stable=True)[:n_users].tolist()
            self.users = [common[n] for n in top]
            self.rows = [
                {u: m.score_users(torch.tensor([x.user_index[u]]))[0].numpy() for u in self.users}
                for m, x in zip(models, served, strict=True)
            ]
        self.items = [x.item_index for x in served]

    def _matches(self, n: int, body: dict[str, Any]) -> bool:
        row, index = self.rows[n][body["user"]], self.items[n]
        return all(
            bool(np.isclose(it["score"], row[index[it["item"]]], rtol=1e-5, atol=1e-7))
            for it in body["items"]
        )

    def judge(self, samples: list[Sample]) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        unknown = popularity = mismatch = telling = 0
        for s in samples:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
            if s.status != 200:
                continue
            body = json.loads(s.body)
            if body["model_version"] not in self.versions:
                unknown += 1
            elif body["source"] != "model":
                popularity += 1
            else:
                n = self.versions.index(body["model_version"])
                mismatch += not self._matches(n, body)
                # the check's power: scores that the other version would not have produced
                telling += not self._matches(1 - n, body)
        return {
            "statuses": statuses,
            "failed": sum(n for code, n in statuses.items() if code != "200"),
            "partial": unknown + popularity + mismatch,
            "partial_breakdown": {
                "unknown_version": unknown,
                "popularity_fallback": popularity,
                "scores_not_of_named_version": mismatch,
            },
            "responses_telling_versions_apart": telling,
        }
