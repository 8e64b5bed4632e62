"""A private place to measure in: its own PostgreSQL database and its own Redis server.

Every benchmark builds its schema from scratch, so figures never depend on earlier runs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/syncguard_bench"
)


@dataclass(frozen=True)
class BenchEnvironment:
    database_url: str
    redis_url: str
    workdir: Path

    def process_env(self, **overrides: str) -> dict[str, str]:
        from harness.local_services import REPO

        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CELERY_BROKER_URL=self.redis_url,
            PYTHONPATH=str(REPO),
        )
        env.update(overrides)
        return env

    def activate(self) -> None:
        """Point this process's settings at the bench services, forgetting any earlier ones."""
        from shared.settings import get_settings
        from shared.store.engine import forget_engines

        os.environ.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, CELERY_BROKER_URL=self.redis_url)
        get_settings.cache_clear()
        forget_engines()


def recreate_database(url: str) -> None:
    """Drop and create the bench database, then migrate it: a clean slate each run."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": target.database},
        )
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}"'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    from shared.store.migrate import upgrade

    upgrade(url)


@contextmanager
def bench_environment(*redis_args: str) -> Iterator[BenchEnvironment]:
    """A fresh database and a private Redis, both gone (or reset) afterwards."""
    from harness.local_services import private_redis

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syncguard-bench-")))
        redis_url = stack.enter_context(private_redis(workdir, *redis_args))
        recreate_database(BENCH_DATABASE_URL)
        environment = BenchEnvironment(BENCH_DATABASE_URL, redis_url, workdir)
        environment.activate()
        yield environment


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; what p50/p99 mean in our tables."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(values)


def print_figures(figures: dict[str, float]) -> None:
    """The benchmark's figures as an aligned table, then as one JSON line for machines."""
    import json

    width = max(len(key) for key in figures) + 2
    for key, value in figures.items():
        print(f"{key:<{width}}{value:>12}")
    print(json.dumps(figures))
