"""A real stack for end-to-end tests: Postgres database, a throwaway Redis server, Celery
worker and beat processes and uvicorn API replicas, each a separate OS process.

Waiting is always polling with a deadline (``wait_for``), never a fixed sleep.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# one implementation of processes and polling for the e2e tests and the pipeline benchmark
from service.bench.procs import HOST, Proc, free_port, wait_for

__all__ = ["HOST", "Proc", "Stack", "free_port", "wait_for"]


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    redis_port: int
    procs: list[Proc] = field(default_factory=list)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(name, list(args), {**self.env, **(env or {})}, self.root / f"{name}.log")
        self.procs.append(proc.start())
        return proc

    def redis(self) -> Proc:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        return self.spawn(
            f"redis-{len(self.procs)}",
            exe,
            "--port", str(self.redis_port), "--bind", HOST, "--save", "", "--appendonly", "no",
            "--dir", str(self.root),
        )  # fmt: skip

    def worker(
        self, name: str, queues: str = "unlearning,default", env: dict[str, str] | None = None
    ) -> Proc:
        return self.spawn(
            name,
            sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
            "-Q", queues, "-c", "1", "--pool", "solo", "-n", f"{name}@%h", "--loglevel", "INFO",
            env=env,
        )  # fmt: skip

    def beat(self) -> Proc:
        return self.spawn(
            "beat",
            sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat",
            "-s", str(self.root / "beat-schedule"), "--loglevel", "INFO",
        )  # fmt: skip

    def replica(self, name: str) -> tuple[Proc, str]:
        port = free_port()
        proc = self.spawn(
            name,
            sys.executable, "-m", "uvicorn", "service.app:app", "--host", HOST,
            "--port", str(port), "--log-level", "warning",
        )  # fmt: skip
        url = f"http://{HOST}:{port}"
        wait_for(
            lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200,
            timeout=60,
            what=f"{name} ready ({proc.tail(5)})",
        )
        return proc, url

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
