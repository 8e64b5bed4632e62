"""Workers, beat and the API refuse a Redis whose maxmemory-policy can evict keys (shared/preflight).

Each test starts the real process (`celery -A workers.app worker`, `celery -A workers.app beat`,
`uvicorn api.app:app`) on private redis-server processes started with the policy under test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis import Redis

from harness.local_services import ServiceFailed, Workers, private_redis
from tests.api.conftest import running_api
from tests.conftest import ARTIFACTS
from tests.services import service_environment

pytestmark = pytest.mark.integration

FIX = "set maxmemory-policy noeviction (in redis.conf, or CONFIG SET maxmemory-policy noeviction) and start again"
NO_CONFIG = ("--rename-command", "CONFIG", "")  # as managed Redis services hide CONFIG
START_TIMEOUT_S = 60


def on_redis(broker: str, locks: str | None = None) -> dict[str, str]:
    return service_environment(CELERY_BROKER_URL=broker, REDIS_URL=locks or broker)


def run_to_exit(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A process that should refuse to start: it must exit by itself, well before the timeout."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


def test_a_worker_refuses_a_broker_that_evicts_any_key_and_takes_nothing_off_the_queue(tmp_path: Path) -> None:
    with private_redis(tmp_path, "--maxmemory-policy", "allkeys-lru") as url:
        Redis.from_url(url).rpush("exports", b"a message the worker must not take")
        with pytest.raises(ServiceFailed) as refused, Workers(on_redis(url), tmp_path, concurrency=1):
            pass
        assert Redis.from_url(url).llen("exports") == 1
    said = str(refused.value)
    assert "a worker exited with 1 while starting" in said
    assert f"syncguard refuses to start: Redis at {url} " in said
    assert "has maxmemory-policy allkeys-lru, which can evict any key when Redis is full: queued exports" in said
    assert FIX in said


def test_beat_refuses_a_locks_redis_that_evicts_keys_with_a_ttl(tmp_path: Path) -> None:
    """The broker is fine; REDIS_URL, another server, holds the locks and the ledger, which have a TTL."""
    with (
        private_redis(tmp_path) as broker,
        private_redis(tmp_path, "--maxmemory-policy", "volatile-lru") as locks,
    ):
        done = run_to_exit(
            [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO"],
            on_redis(broker, locks),
            tmp_path,
        )
        beat_lock = Redis.from_url(locks).exists("syncguard:beat:lock")
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert f"Redis at {locks} (REDIS_URL: value locks, post ledger, beat's schedule) has maxmemory-policy " in said
    assert "volatile-lru, which evicts keys with a TTL when Redis is full: held locks and the post ledger" in said
    assert broker not in said.split("syncguard refuses to start:", 1)[1], "the broker's server was fine"
    assert FIX in said
    assert not beat_lock, "beat started scheduling before it refused"


def test_the_api_refuses_to_start_on_a_redis_that_evicts(tmp_path: Path, database: str) -> None:
    with private_redis(tmp_path, "--maxmemory-policy", "allkeys-lfu") as url:
        with pytest.raises(ServiceFailed) as refused, running_api(REDIS_URL=url, CELERY_BROKER_URL=url):
            pass
    said = str(refused.value)
    assert "uvicorn exited with 3" in said  # uvicorn's code for a failed application start-up
    assert f"Redis at {url} " in said and "has maxmemory-policy allkeys-lfu, which can evict any key" in said
    assert FIX in said
    assert "Application startup failed. Exiting." in said


def test_a_worker_on_a_redis_without_config_warns_and_starts(tmp_path: Path) -> None:
    with private_redis(tmp_path, *NO_CONFIG) as url, Workers(on_redis(url), tmp_path, concurrency=1) as workers:
        log = workers.logs[0].read_text()
    assert f"WARNING/MainProcess] could not read maxmemory-policy of Redis at {url} " in log
    assert "CONFIG GET was refused: unknown command 'CONFIG'" in log
    assert "starting anyway. Make sure it is noeviction" in log


def test_the_api_on_a_redis_without_config_warns_and_serves(tmp_path: Path, database: str) -> None:
    with private_redis(tmp_path, *NO_CONFIG) as url, running_api(REDIS_URL=url, CELERY_BROKER_URL=url) as server:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        log = (ARTIFACTS / f"api-{server.url.rsplit(':', 1)[1]}.log").read_text()
    assert f"could not read maxmemory-policy of Redis at {url} " in log
    assert "starting anyway" in log


def test_a_worker_on_noeviction_starts_and_says_so(tmp_path: Path) -> None:
    """The default policy of redis-server, and the one docker-compose.yml sets."""
    with private_redis(tmp_path, "--maxmemory-policy", "noeviction") as url, Workers(on_redis(url), tmp_path) as w:
        log = w.logs[0].read_text()
    assert f"INFO/MainProcess] Redis at {url} (REDIS_URL and CELERY_BROKER_URL: " in log
    assert "has maxmemory-policy noeviction" in log
    assert "WARNING" not in log and "refuses" not in log
