"""The race invariants hold when workers on different hosts share one Redis and one PostgreSQL over a network.

Three network namespaces stand in for three machines (see tests/scale/hosts.py): the database host runs
Redis and PostgreSQL on 10.231.0.1, and each worker host reaches them over its own veth. The workload is
the race test's (many objects fighting over a small pool of values, delivered out of order), only more of
it, and the same checker judges the result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from shared.exports.post_ledger import outcomes, wait_for
from shared.exports.producer import post_exports, producer_app
from shared.settings import Settings
from shared.store.engine import forget_engines, transaction
from shared.store.migrate import upgrade
from shared.store.tables import FailedExport
from shared.tenants.registry import TenantSpec, create_tenant
from tests.conftest import ARTIFACTS
from tests.invariants import assert_race_invariants, race_workload
from tests.scale.hosts import (
    DATABASE_HOST_ADDRESS,
    NamespacedWorker,
    TestNetwork,
    in_namespace,
    namespaced_postgres,
    namespaced_redis,
    namespaced_workers,
    require_network_namespaces,
)
from tests.services import service_environment
from tests.workers.helpers import wait_until_idle

pytestmark = pytest.mark.integration

WORKER_HOSTS = 2
ROUNDS = 30
TENANT = "multihost"


@dataclass
class Cluster:
    network: TestNetwork
    settings: Settings  # how the test process (root namespace) reaches the servers: their Unix sockets
    redis: Redis
    workers: list[NamespacedWorker]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_network_namespaces()
    log_dir = ARTIFACTS / "scale"
    log_dir.mkdir(parents=True, exist_ok=True)
    network = TestNetwork()
    with ExitStack() as stack:
        stack.callback(network.remove)
        worker_hosts = network.create(WORKER_HOSTS)
        redis_url = stack.enter_context(namespaced_redis(network.database_host, tmp_path_factory.mktemp("redis")))
        database_url = stack.enter_context(namespaced_postgres(network.database_host))
        stack.callback(forget_engines)
        upgrade(database_url)
        over_the_network = f"redis://{DATABASE_HOST_ADDRESS}:6379/0"
        worker_env = service_environment(
            DATABASE_URL=f"postgresql+psycopg://postgres@{DATABASE_HOST_ADDRESS}:5432/syncguard",
            REDIS_URL=over_the_network,
            CELERY_BROKER_URL=over_the_network,
        )
        workers = stack.enter_context(namespaced_workers(worker_hosts, worker_env, log_dir))
        socket_path = redis_url.removeprefix("unix://").split("?")[0]
        settings = Settings(
            database_url=database_url, redis_url=redis_url, celery_broker_url=f"redis+socket://{socket_path}"
        )
        yield Cluster(network, settings, Redis.from_url(redis_url), workers)
    assert network.leftovers() == [], "namespaces or veths of the test survived its cleanup"


def test_worker_hosts_reach_the_servers_only_over_their_veth(cluster: Cluster) -> None:
    """Each worker host is its own machine: the database host's address answers, its own loopback does not."""
    probe = (
        "import socket, sys\n"
        "def reaches(host, port):\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2).close()\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(reaches(sys.argv[1], 6379), reaches(sys.argv[1], 5432), reaches('127.0.0.1', 5432))\n"
    )
    for worker in cluster.workers:
        result = subprocess.run(
            in_namespace(worker.namespace, sys.executable, "-c", probe, DATABASE_HOST_ADDRESS),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert result.stdout.split() == ["True", "True", "False"], (worker.namespace, result.stdout, result.stderr)


def test_racing_exports_from_two_hosts_never_give_one_value_two_holders(cluster: Cluster) -> None:
    with transaction(cluster.settings.database_url) as session:
        create_tenant(session, TenantSpec(name=TENANT, initial_domain=f"{TENANT}.onmicrosoft.com"))
    workload = race_workload(TENANT, seed=20261127, rounds=ROUNDS)

    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as env:
        # Celery prefers the CELERY_BROKER_URL variable (set for the rest of the suite) to the app's own
        # broker: without this the exports would go to the suite's broker, not to the test hosts' Redis.
        env.setenv("CELERY_BROKER_URL", cluster.settings.broker_url)
        app = producer_app(cluster.settings)
        assert app.connection_for_write().as_uri().startswith("redis+socket://"), app.connection_for_write().as_uri()
        posted = post_exports(workload.lines, cluster.settings, app)
    assert posted.enqueued == len(workload.lines) and not posted.rejected
    assert wait_for(cluster.redis, posted.batch, posted.enqueued, timeout_s=240), "the workers did not finish"
    elapsed = time.perf_counter() - started
    wait_until_idle(cluster.redis)
    counts = outcomes(cluster.redis, posted.batch)
    per_worker = {worker.namespace: worker.applied() for worker in cluster.workers}

    with transaction(cluster.settings.database_url) as session:
        failed = session.scalars(select(FailedExport).where(FailedExport.tenant == TENANT)).all()
    report = assert_race_invariants(TENANT, workload.final, database_url=cluster.settings.database_url)

    figures = {
        "exports": len(workload.lines),
        "objects": len(workload.final),
        "worker_hosts": len(cluster.workers),
        "seconds": round(elapsed, 2),
        "exports_per_s": round(len(workload.lines) / elapsed, 1),
        "outcomes": counts,
        "apply_export_tasks_per_host": per_worker,
        "invariant_checks": report.checks,
    }
    Path(ARTIFACTS, "scale", "multi_host.json").write_text(json.dumps(figures, indent=2))
    print(f"\nmulti-host: {json.dumps(figures)}")

    assert len(workload.lines) >= 1500
    assert sum(counts.values()) == len(workload.lines) and "failed" not in counts, counts
    assert failed == []
    assert all(n > 0 for n in per_worker.values()), f"every host must have applied exports: {per_worker}"
