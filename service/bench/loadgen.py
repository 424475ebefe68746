"""A lean HTTP/1.1 keep-alive load generator on asyncio streams.

Deliberately minimal (no HTTP library) so that the generator costs far less CPU per request
than the server it measures; both the bare endpoint and the real one get the same generator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

RequestFactory = Callable[[int], tuple[str, str, bytes | None]]  # n -> (method, path, body)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    status_counts: dict[int, int]
    latencies_ms: list[float] = field(repr=False)
    bodies: list[bytes] = field(default_factory=list, repr=False)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "throughput_rps": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "status_counts": {str(k): v for k, v in sorted(self.status_counts.items())},
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run(
    host: str,
    port: int,
    make: RequestFactory,
    headers: dict[str, str],
    *,
    connections: int,
    duration: float,
    max_requests: int | None,
    keep_bodies: bool,
) -> LoadResult:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    counter = iter(range(10**12))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: list[bytes] = []
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                n = next(counter)
                if max_requests is not None and n >= max_requests:
                    return
                method, path, body = make(n)
                req = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
                if body is not None:
                    req += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                payload = req.encode() + b"\r\n" + (body or b"")
                t0 = time.perf_counter()
                writer.write(payload)
                status, resp = await _read_response(reader)
                latencies.append((time.perf_counter() - t0) * 1e3)
                statuses[status] = statuses.get(status, 0) + 1
                if keep_bodies:
                    bodies.append(resp)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return LoadResult(len(latencies), elapsed, statuses, latencies, bodies)


def run_load(
    host: str,
    port: int,
    make: RequestFactory,
    headers: dict[str, str] | None = None,
    *,
    connections: int = 16,
    duration: float = 10.0,
    max_requests: int | None = None,
    keep_bodies: bool = False,
) -> LoadResult:
    """Drive ``connections`` keep-alive connections for ``duration`` seconds."""
    return asyncio.run(
        _run(
            host,
            port,
            make,
            headers or {},
            connections=connections,
            duration=duration,
            max_requests=max_requests,
            keep_bodies=keep_bodies,
        )
    )


def json_body(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()
