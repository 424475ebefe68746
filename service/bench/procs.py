"""A process stack for benchmarks: a throwaway Redis server, Celery worker and beat, uvicorn
API replicas, each a separate OS process in its own process group; and ``Traffic``, timed GET
load and served-version polling against the replicas.

Production code cannot import the end-to-end test helpers (``tests/e2e/stack.py``), so this is
their benchmark-side twin. Waiting is always polling with a deadline (``wait_for``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import psycopg
import redis

from service.bench.loadgen import _read_response

T = TypeVar("T")
HOST = "127.0.0.1"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class ProcessDied(RuntimeError):
    """A process of the stack exited; waiting on it any longer is pointless."""


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; raise naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except ProcessDied:
            raise
        except Exception as exc:  # not ready yet (connection refused, ...)
            last = exc
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} (last error: {last})")


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty Postgres database (its SQLAlchemy URL), dropped on exit, also after an
    error; WITH (FORCE) ends connections a stopped process may have left behind."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Proc:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:  # the child keeps its own copy of the descriptor
            # a new session, so stop() can signal the process and every child it forked
            self.popen = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM the process group; SIGKILL it if it has not exited after 15 s."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tail(self, n: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


@dataclass
class Stack:
    """Processes sharing one environment; ``close`` stops them in reverse start order."""

    logs: Path
    env: dict[str, str]
    redis_port: int
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, list(args), {**self.env, **(env or {})}, self.logs / f"{name}.log")
        self.procs.append(proc.start())
        return proc

    def redis(self) -> Proc:
        """Start a Redis server on ``redis_port`` and wait until it answers PING."""
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        # no persistence: the server and its data live only as long as the benchmark
        proc = self.spawn(
            "redis",
            exe,
            "--port", str(self.redis_port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.logs),
        )  # fmt: skip
        client = redis.Redis(host=HOST, port=self.redis_port)
        try:
            wait_for(client.ping, timeout=10, what="redis")
        finally:
            client.close()
        return proc

    def worker(self, name: str, queues: str = "unlearning,default") -> Proc:
        return self.spawn(
            name,
            sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
            "-Q", queues, "-c", "1", "--pool", "solo", "-n", f"{name}@%h", "--loglevel", "INFO",
        )  # fmt: skip

    def beat(self) -> Proc:
        return self.spawn(
            "beat",
            sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
            "-s", str(self.logs / "beat-schedule"), "--loglevel", "INFO",
        )  # fmt: skip

    def replica(self, name: str, timeout: float = 120) -> tuple[Proc, str]:
        """Start one uvicorn replica and wait until /readyz answers 200; (proc, base url)."""
        port = free_port()
        proc = self.spawn(
            name,
            sys.executable, "-m", "uvicorn", "service.app:app", "--host", HOST,
            "--port", str(port), "--log-level", "warning", "--no-access-log",
        )  # fmt: skip
        url = f"http://{HOST}:{port}"

        def ready() -> bool:
            if not proc.alive():
                raise ProcessDied(f"{name} exited:\n{proc.tail(20)}")
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200

        wait_for(ready, timeout=timeout, what=f"{name} ready")
        return proc, url

    def check_alive(self) -> None:
        """Raise naming the first process that died (a benchmark would otherwise hang)."""
        for proc in self.procs:
            if not proc.alive():
                raise ProcessDied(f"{proc.name} exited unexpectedly:\n{proc.tail(20)}")

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Api:
    """An admin client for the stack's replicas (``urls``); also carries the stack, so a
    phase can notice a dead process instead of waiting for its deadline."""

    def __init__(self, stack: Stack, urls: list[str], key: str) -> None:
        self.stack, self.urls = stack, urls
        self.auth = {"Authorization": f"Bearer {key}"}
        self.http = httpx.Client(headers=self.auth, timeout=30)

    def get(self, url: str, path: str, **params: Any) -> Any:
        r = self.http.get(f"{url}{path}", params=params or None)
        r.raise_for_status()
        return r.json()

    def served(self, url: str) -> str | None:
        served: str | None = self.get(url, "/v1/models/current")["served_version"]
        return served

    def hot_swap(self, url: str, version: str) -> None:
        # the benchmark alternates with the trained version, which predates its deletions
        body = {"version": version, "allow_reexposure": True}
        r = self.http.post(f"{url}/v1/models/hot-swap", json=body)
        if r.status_code != 200:
            raise RuntimeError(f"hot-swap to {version}: {r.status_code} {r.text}")

    def deletions(self, status: str, *, everything: bool = True) -> list[dict[str, Any]]:
        """Deletion requests with ``status`` (an admin key sees all): every page, or one."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"status": status, "limit": 500 if everything else 1}
        while True:
            page = self.get(self.urls[0], "/v1/deletions", **params)
            items += page["items"]
            if not everything or not page["next_cursor"]:
                return items
            params["cursor"] = page["next_cursor"]

    def all_serving(self, version: str, timeout: float = 30) -> None:
        for url in self.urls:

            def on(u: str = url) -> bool:
                return self.served(u) == version

            wait_for(on, timeout=timeout, what=f"{url} serving {version}")


def stats(xs: list[float]) -> dict[str, float]:
    """n, p50, p95 (linear interpolation), max and mean, rounded to milliseconds."""
    a = np.asarray(xs, dtype=float)
    if a.size == 0:
        return {"n": 0}
    p50, p95 = np.percentile(a, [50, 95])
    return {
        "n": int(a.size),
        **{k: round(float(v), 3) for k, v in (("p50", p50), ("p95", p95), ("max", a.max()))},
        "mean": round(float(a.mean()), 3),
    }


@dataclass
class Sample:
    """One GET of the traffic: which replica, when sent and received (perf_counter), the
    HTTP status (0 = connection error) and the body."""

    replica: int
    sent: float
    recv: float
    status: int
    body: bytes


class Traffic:
    """Steady GET traffic on every replica plus a poll of each replica's served version,
    recording the time of every response, in threads of this process.

    The GETs use the lean wire format of ``loadgen`` (keep-alive, no HTTP library), but keep
    per-response timestamps and survive connection errors (counted, then reconnected), which
    ``run_load`` does not: both are what a hot-swap measurement needs.
    """

    def __init__(
        self, urls: list[str], paths: list[str], headers: dict[str, str], *,
        connections: int, poll_s: float,
    ) -> None:  # fmt: skip
        self.urls, self.paths, self.headers = urls, paths, headers
        self.connections, self.poll_s = connections, poll_s
        self.samples: list[Sample] = []
        self.polls: list[tuple[int, float, str | None]] = []  # (replica, recv, served version)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=lambda: asyncio.run(self._load()), daemon=True),
            threading.Thread(target=self._poll, daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> float:
        """Stop and join; returns the stop time (perf_counter)."""
        end = time.perf_counter()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        return end

    async def _load(self) -> None:
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())

        async def connection(replica: int, n: int) -> None:
            host, port = self.urls[replica].rsplit("//", 1)[1].split(":")
            writer: asyncio.StreamWriter | None = None
            while not self._stop.is_set():
                n += 1
                path = self.paths[n % len(self.paths)]
                sent = time.perf_counter()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, int(port))
                    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
                    status, body = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    self.samples.append(
                        Sample(replica, sent, time.perf_counter(), 0, repr(exc).encode())
                    )
                    if writer is not None:
                        writer.close()
                    writer = None
                    await asyncio.sleep(0.01)
                    continue
                self.samples.append(Sample(replica, sent, time.perf_counter(), status, body))
            if writer is not None:
                writer.close()

        await asyncio.gather(
            *(
                connection(r, c * 7919)
                for r in range(len(self.urls))
                for c in range(self.connections)
            )
        )

    def _poll(self) -> None:
        with httpx.Client(headers=self.headers, timeout=5) as http:
            while not self._stop.is_set():
                tick = time.perf_counter()
                for n, url in enumerate(self.urls):
                    try:
                        served = http.get(f"{url}/v1/models/current").json()["served_version"]
                    except (httpx.HTTPError, ValueError, KeyError):
                        served = None
                    self.polls.append((n, time.perf_counter(), served))
                time.sleep(max(0.0, tick + self.poll_s - time.perf_counter()))

    def versions_seen(self) -> list[tuple[int, float, str | None]]:
        """(replica, recv time, model_version) of every 200 response, in receive order."""
        out = []
        for s in self.samples:
            if s.status == 200:
                try:
                    out.append((s.replica, s.recv, json.loads(s.body).get("model_version")))
                except ValueError:
                    continue
        return sorted(out, key=lambda r: r[1])


def switch_times(
    seen: list[tuple[int, float, str | None]],
    publishes: list[tuple[float, float, str]],
    end: float,
    replicas: int,
) -> list[list[float | None]]:
    """Per publish (sent, returned, version) and replica: seconds from the publish call
    returning until the first observation of the version, in the window before the next
    publish (None: never seen in it). 0 when it was already served as the call returned:
    the old version was served before, so any sighting after ``sent`` is this publish's."""
    out: list[list[float | None]] = []
    for k, (sent, returned, version) in enumerate(publishes):
        until = publishes[k + 1][0] if k + 1 < len(publishes) else end
        row: list[float | None] = []
        for r in range(replicas):
            first = next(
                (t for rr, t, v in seen if rr == r and sent <= t < until and v == version), None
            )
            row.append(None if first is None else round(max(0.0, first - returned), 3))
        out.append(row)
    return out
