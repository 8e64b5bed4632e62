"""A database or Redis that is away, full or slow is a 503 with `Retry-After`, never a 500, and neither
a 503 nor `/healthz` tells a caller the internal host names or user names (api/outages.py).

The pool and the statement timeout are exhausted for real: the test takes an ACCESS EXCLUSIVE lock on
`api_tokens`, so every authenticated request of the real uvicorn API waits in PostgreSQL, holding its
connection, until the lock goes or the API's statement timeout cancels it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, text

from harness.local_services import free_port, uvicorn_api
from shared.store.engine import get_engine
from tests.api.conftest import TenantAccess, running_api
from tests.conftest import ARTIFACTS
from tests.services import service_environment

pytestmark = pytest.mark.integration

SECRET_USER, SECRET_PASSWORD, SECRET_DATABASE = "svc-syncguard-7f3", "pw-9c1e", "db-internal-42"


@contextmanager
def tokens_locked(database: str) -> Iterator[Connection]:
    """Every token lookup waits for this lock; it goes when the block ends."""
    with get_engine(database).connect() as connection:
        connection.execute(text("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE"))
        try:
            yield connection
        finally:
            connection.rollback()


def waiting_for_the_lock(connection: Connection) -> int:
    return int(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    )


def features(url: str, access: TenantAccess) -> httpx.Response:
    return httpx.get(f"{url}/v1/tenants/{access.name}/features", headers=access.headers, timeout=30)


def assert_503_retry_after(response: httpx.Response, detail: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json() == {"detail": f"{detail}; try again shortly"}


def test_a_full_pool_answers_503_with_retry_after_and_the_waiting_request_completes(
    access: TenantAccess, database: str
) -> None:
    settings = {"API_DATABASE_POOL_SIZE": "1", "API_DATABASE_POOL_TIMEOUT_S": "1", "API_STATEMENT_TIMEOUT_S": "60"}
    with running_api(**settings) as server, tokens_locked(database) as lock:
        first: list[httpx.Response] = []
        holder = threading.Thread(target=lambda: first.append(features(server.url, access)))
        holder.start()
        deadline = time.monotonic() + 20
        while waiting_for_the_lock(lock) < 1:  # the first request holds the one connection, waiting
            assert time.monotonic() < deadline, "the first request never reached PostgreSQL"
            time.sleep(0.05)
        assert_503_retry_after(
            features(server.url, access), "database busy: every connection of this API process is in use"
        )
        health = httpx.get(f"{server.url}/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json()["database"] == "database busy: every connection of this API process is in use"
        lock.rollback()  # the lock goes: the waiting request carries on
        holder.join(timeout=30)
    assert first and first[0].status_code == 200, first


def test_a_statement_past_the_api_timeout_answers_503_with_retry_after(access: TenantAccess, database: str) -> None:
    with running_api(API_STATEMENT_TIMEOUT_S="1") as server, tokens_locked(database):
        response = features(server.url, access)  # without the timeout: waits for the lock, past httpx's 30 s
    assert_503_retry_after(response, "database too slow: a statement ran past the API's time limit")


@contextmanager
def answering_api(**env: str) -> Iterator[tuple[str, Path]]:
    """`uvicorn api.app:app`, ready once it answers at all: its dependencies may well be down."""

    def answers(url: str) -> bool:
        try:
            httpx.get(f"{url}/healthz", timeout=20)
            return True
        except httpx.TransportError:
            return False

    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    log = ARTIFACTS / f"api-{port}.log"
    with uvicorn_api(service_environment(**env), log, ready=answers, timeout_s=60, port=port) as (url, _):
        yield url, log


def test_healthz_and_503s_say_what_is_down_without_hosts_ports_or_users(access: TenantAccess) -> None:
    """PostgreSQL and Redis on ports where nothing listens; the URLs carry a user, a password and a name."""
    dead_database, dead_redis = free_port(), free_port()
    database_url = f"postgresql+psycopg://{SECRET_USER}:{SECRET_PASSWORD}@127.0.0.1:{dead_database}/{SECRET_DATABASE}"
    redis_url = f"redis://:{SECRET_PASSWORD}@127.0.0.1:{dead_redis}/0"
    with answering_api(DATABASE_URL=database_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url) as (url, log):
        health = httpx.get(f"{url}/healthz", timeout=30)
        tenant_route = features(url, access)
        metrics = httpx.get(f"{url}/metrics", timeout=30)
        logged = log.read_text()
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "database unavailable", "redis": "Redis unavailable"}
    assert_503_retry_after(tenant_route, "database unavailable")
    assert metrics.status_code == 503
    for body in (health.text, tenant_route.text, metrics.text):
        for secret in (SECRET_USER, SECRET_PASSWORD, SECRET_DATABASE, "127.0.0.1", str(dead_database), str(dead_redis)):
            assert secret not in body, f"{secret!r} in {body!r}"
    # The operator still learns why, from the log.
    assert "database unavailable (/healthz): OperationalError: " in logged and str(dead_database) in logged
    assert f"could not read maxmemory-policy of Redis at redis://:***@127.0.0.1:{dead_redis}/0" in logged
    assert SECRET_PASSWORD not in logged
