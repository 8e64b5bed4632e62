"""Real services for the tests: PostgreSQL, Redis and Celery worker processes on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from contextlib import contextmanager
from pathlib import Path

from redis import Redis

REPO = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_environment(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=TEST_DATABASE_URL,
        REDIS_URL=TEST_REDIS_URL,
        CELERY_BROKER_URL=TEST_REDIS_URL,
        PYTHONPATH=str(REPO),
    )
    env.update(overrides)
    return env


class WorkerProcesses:
    """`celery -A workers.app worker` nodes started as real processes, stopped on exit."""

    def __init__(self, count: int, concurrency: int, log_dir: Path, env: dict[str, str]) -> None:
        self.count = count
        self.concurrency = concurrency
        self.log_dir = log_dir
        self.env = env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        tag = uuid.uuid4().hex[:6]
        for n in range(self.count):
            log = self.log_dir / f"worker-{tag}-{n}.log"
            self.logs.append(log)
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "prefork",
                     "--concurrency", str(self.concurrency), "--hostname", f"test{n}-{tag}@%h",
                     "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--logfile", str(log)],
                    cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + 60
        while not all(log.exists() and " ready." in log.read_text(errors="replace") for log in self.logs):
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a worker exited with {process.returncode}; see {self.logs}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers not ready after 60 s; see {self.logs}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def running_workers(count: int, concurrency: int, log_dir: Path, **env: str) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(count, concurrency, log_dir, service_environment(**env))
    workers.start()
    try:
        yield workers
    finally:
        workers.stop()


def queue_lengths(redis: Redis, queues: Iterable[str] = ("exports", "releases", "maintenance")) -> dict[str, int]:
    return {q: int(redis.llen(q)) for q in queues}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MailCatcher:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it accepts."""

    def __init__(self) -> None:
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        catcher = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
                catcher.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "MailCatcher":
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def for_recipient(self, address: str) -> list[Any]:
        return [m for m in self.messages if address in str(m["To"])]
