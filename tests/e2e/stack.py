"""A real stack for end-to-end tests: Postgres database, a throwaway Redis server, Celery
worker and beat processes and uvicorn API replicas, each a separate OS process.

Waiting is always polling with a deadline (``wait_for``), never a fixed sleep.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as exc:  # not ready yet (connection refused, ...)
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last})")


@dataclass
class Proc:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.popen = subprocess.Popen(
            self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: no cleanup, like a crashed machine."""
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


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
