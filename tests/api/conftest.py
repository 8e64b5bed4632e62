"""A real `uvicorn api.app:app` process on a free loopback port, on the test PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from harness.local_services import free_port, uvicorn_api
from shared.store.engine import transaction
from shared.store.tables import Tenant
from shared.tenants.tokens import issue_token
from tests.api.browser import chromium, page  # noqa: F401 (Chromium fixtures for every browser test here)
from tests.conftest import ARTIFACTS
from tests.services import service_environment

BODY_LIMIT = 256 * 1024  # small, so the 413 tests send little


@dataclass(frozen=True)
class ApiServer:
    url: str
    body_limit: int


@dataclass(frozen=True)
class TenantAccess:
    """A tenant and one of its API tokens."""

    tenant: Tenant
    token: str

    @property
    def name(self) -> str:
        return self.tenant.name

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def running_api(**env: str) -> Iterator[ApiServer]:
    """`uvicorn api.app:app` as an operator starts it (README), stopped when the block ends."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    log = ARTIFACTS / f"api-{port}.log"  # tests read the log of the server on that port
    with uvicorn_api(service_environment(API_MAX_BODY_BYTES=str(BODY_LIMIT), **env), log, port=port) as (url, _):
        yield ApiServer(url, BODY_LIMIT)


@pytest.fixture(scope="session")
def api_server(database: str) -> Iterator[ApiServer]:
    with running_api() as server:
        yield server


@pytest.fixture
def client(api_server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        yield http


@pytest.fixture
def make_access(make_tenant: Callable[..., Tenant]) -> Callable[..., TenantAccess]:
    """A new tenant (deleted afterwards, tokens with it) and a token for it."""

    def make(**options: object) -> TenantAccess:
        tenant = make_tenant(**options)
        with transaction() as session:
            issued = issue_token(session, session.merge(tenant), name="tests")
        return TenantAccess(tenant, issued.secret)

    return make


@pytest.fixture
def access(make_access: Callable[..., TenantAccess]) -> TenantAccess:
    return make_access()
