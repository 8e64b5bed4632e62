"""Real services for the tests: PostgreSQL, Redis and Celery worker processes on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import Redis

from harness.local_services import REPO, Workers, free_port

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


@contextmanager
def running_workers(count: int, concurrency: int, log_dir: Path, **env: str) -> Iterator[Workers]:
    """Real worker nodes on the test services, stopped when the block ends."""
    with Workers(service_environment(**env), log_dir, nodes=count, concurrency=concurrency) as workers:
        yield workers


def queue_lengths(redis: Redis, queues: Iterable[str] = ("exports", "releases", "maintenance")) -> dict[str, int]:
    return {q: int(redis.llen(q)) for q in queues}


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

    def __enter__(self) -> MailCatcher:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def for_recipient(self, address: str) -> list[Any]:
        return [m for m in self.messages if address in str(m["To"])]
