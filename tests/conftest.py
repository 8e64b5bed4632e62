"""Fixtures on real PostgreSQL and Redis. The environment is set before any settings are read."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import TEST_DATABASE_URL, TEST_REDIS_URL, running_workers, service_environment

os.environ.update(
    {k: v for k, v in service_environment().items() if k in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
)

from redis import Redis
from sqlalchemy import delete, text

from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.settings import get_settings
from shared.store.engine import get_engine, transaction
from shared.store.migrate import upgrade
from shared.store.tables import Base, FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    """A schema built by the real migration, from scratch, once per run."""
    engine = get_engine(TEST_DATABASE_URL)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(TEST_DATABASE_URL)
    yield TEST_DATABASE_URL


@pytest.fixture(scope="session")
def redis_client() -> Redis:
    client = Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    return client


@pytest.fixture
def make_tenant() -> Iterator[Callable[..., Tenant]]:
    """Create tenants with unique names; delete them and their failures afterwards."""
    created: list[str] = []

    def make(name: str | None = None, **options: Any) -> Tenant:
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        spec = TenantSpec(name=name, initial_domain=options.pop("initial_domain", f"{name}.onmicrosoft.com"), **options)
        with transaction() as session:
            tenant = create_tenant(session, spec)
        created.append(name)
        return tenant

    yield make
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name.in_(created)))
        session.execute(delete(FailedExport).where(FailedExport.tenant.in_(created)))


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant()


@pytest.fixture(scope="session")
def applier(redis_client: Redis) -> ExportApplier:
    """The same code a worker runs, called in-process: for tests about the store, not the queue."""
    settings = get_settings()
    return ExportApplier(LockManager(redis_client, ttl_ms=settings.lock_ttl_ms), settings)


@pytest.fixture(scope="session")
def workers(redis_client: Redis) -> Iterator[Any]:
    """Two real worker nodes (one process each) consuming the test broker."""
    ARTIFACTS.mkdir(exist_ok=True)
    with running_workers(count=2, concurrency=1, log_dir=ARTIFACTS) as processes:
        yield processes


def export_line(
    tenant: str, anchor: str, object_class: str = "User", sequence: int = 1, operation: str = "add", **attributes: Any
) -> str:
    """One export message as a producer would post it (docs/design.md §2, the export message)."""
    message: dict[str, Any] = {
        "tenant": tenant,
        "sourceAnchor": anchor,
        "objectClass": object_class,
        "operation": operation,
        "sequence": sequence,
    }
    if operation != "delete":
        message["attributes"] = attributes
    return json.dumps(message)
