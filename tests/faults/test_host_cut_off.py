"""A worker host cut off from Redis and PostgreSQL for 10 s mid-run, then reconnected: no export
lost, none applied twice.

The hosts are the multi-host test's network namespaces (tests/scale/hosts.py): a database host
running Redis (broker and REDIS_URL) and PostgreSQL, and two worker hosts that reach it over their own
veth. Taking one host's veth down is what a pulled cable or a partitioned node looks like from the
inside: its connections neither close nor answer, and new ones fail. Everything the cut host held
comes due meanwhile: its value locks expire (LOCK_TTL_MS 3 s) while its transaction may still hold
rows and claims in PostgreSQL, and its reserved and running messages go back on the queue after the
visibility timeout (8 s), so the other host applies them while the first may still finish them once
it is back. The object row lock and the sequence check make the second application a skip, and the
claims table's primary key refuses a second holder of a value.

It lives with the fault tests, not beside the multi-host test, because its row belongs in their table.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from shared.exports.post_ledger import done_count, outcomes, wait_for
from shared.exports.producer import post_exports
from shared.settings import Settings
from shared.store.engine import forget_engines, transaction
from shared.store.migrate import upgrade
from shared.store.tables import FailedExport
from shared.tenants.registry import TenantSpec, create_tenant
from tests.conftest import ARTIFACTS, export_line
from tests.faults.cluster import FAULT_SETTINGS, Settled, eventually
from tests.faults.conftest import RecordFault
from tests.invariants import check_directory
from tests.scale.hosts import (
    DATABASE_HOST_ADDRESS,
    NamespacedWorker,
    TestNetwork,
    in_namespace,
    namespaced_beat,
    namespaced_postgres,
    namespaced_redis,
    namespaced_workers,
    require_network_namespaces,
)
from tests.services import service_environment
from tests.workers.helpers import wait_until_idle
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CUT_S = 10.0
TENANT = "cutoff"
POOL = [f"cut{i}@contoso.com" for i in range(40)]

REACHES = (
    "import socket, sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()\n"
    "    print('yes')\n"
    "except OSError:\n"
    "    print('no')\n"
)


@dataclass
class Hosts:
    network: TestNetwork
    settings: Settings  # the test process's way in: the servers' Unix sockets
    redis: Redis
    workers: list[NamespacedWorker]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    require_network_namespaces()
    log_dir = ARTIFACTS / "faults-host-cut-off"
    log_dir.mkdir(parents=True, exist_ok=True)
    network = TestNetwork()
    with ExitStack() as stack:
        stack.callback(network.remove)
        worker_hosts = network.create(2)
        redis_url = stack.enter_context(namespaced_redis(network.database_host, tmp_path))
        database_url = stack.enter_context(namespaced_postgres(network.database_host))
        stack.callback(forget_engines)
        upgrade(database_url)
        over_the_network = f"redis://{DATABASE_HOST_ADDRESS}:6379/0"
        env = service_environment(
            DATABASE_URL=f"postgresql+psycopg://postgres@{DATABASE_HOST_ADDRESS}:5432/syncguard",
            REDIS_URL=over_the_network,
            CELERY_BROKER_URL=over_the_network,
            BEAT_KEY_PREFIX=f"sg-cut-beat-{uuid.uuid4().hex[:8]}:",
            **FAULT_SETTINGS,
        )
        workers = stack.enter_context(namespaced_workers(worker_hosts, env, log_dir, concurrency=1))
        # Beat (the redelivery of what a broker connection lost) on the host that stays connected.
        stack.enter_context(namespaced_beat(worker_hosts[1], env, log_dir / f"beat-{network.tag}.log"))
        socket_path = redis_url.removeprefix("unix://").split("?")[0]
        settings = Settings(
            database_url=database_url, redis_url=redis_url, celery_broker_url=f"redis+socket://{socket_path}"
        )
        yield Hosts(network, settings, Redis.from_url(redis_url), workers)
    assert network.leftovers() == [], "namespaces or veths of the test survived its cleanup"


def reaches(namespace: str, port: int) -> bool:
    probe = in_namespace(namespace, sys.executable, "-c", REACHES, DATABASE_HOST_ADDRESS, str(port))
    return subprocess.run(probe, capture_output=True, text=True, timeout=30, check=True).stdout.strip() == "yes"


def test_a_worker_host_cut_off_for_10_s_mid_run_loses_and_doubles_nothing(
    hosts: Hosts, record_fault: RecordFault, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = hosts.settings.database_url
    with transaction(database_url) as session:
        tenant_id = create_tenant(session, TenantSpec(name=TENANT, initial_domain=f"{TENANT}.onmicrosoft.com")).id
    workload = build(random.Random(31), TENANT, anchors(users=200, groups=100, contacts=50), 8, POOL)
    cut, other = hosts.workers
    started = time.monotonic()
    # Celery prefers the CELERY_BROKER_URL variable to the app's own broker (see test_multi_host).
    monkeypatch.setenv("CELERY_BROKER_URL", hosts.settings.broker_url)
    posted = post_exports(workload.lines, hosts.settings)
    assert posted.enqueued == len(workload.lines) == 2800

    eventually(lambda: done_count(hosts.redis, posted.batch) >= 400, 180, "400 exports applied")
    eventually(lambda: cut.applied() > 0, 60, "the host to be cut off applied exports")
    hosts.network.set_link(cut.namespace, up=False)
    cut_at = time.monotonic()
    try:
        done_at_cut = done_count(hosts.redis, posted.batch)
        cut_off = not reaches(cut.namespace, 5432) and not reaches(cut.namespace, 6379)
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    finally:
        hosts.network.set_link(cut.namespace, up=True)
    applied_by_cut_at_restore = cut.applied()

    finished = wait_for(hosts.redis, posted.batch, len(workload.lines), timeout_s=300, poll_s=0.1)
    wait_until_idle(hosts.redis, timeout_s=120)
    settled = Settled(
        tenant=TENANT,
        exports=len(workload.lines),
        finished=finished,
        never_done=len(workload.lines) - done_count(hosts.redis, posted.batch),
        counts=outcomes(hosts.redis, posted.batch),
        findings=check_directory(tenant_id, workload.final, workload.final.last_sequence, database_url=database_url),
    )
    record_fault(
        f"a worker host's veth down {CUT_S:g} s mid-run (Redis and PostgreSQL out of reach)",
        1,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )
    with transaction(database_url) as session:
        failed = [f.message for f in session.scalars(select(FailedExport).where(FailedExport.tenant == TENANT))]

    assert cut_off, "with its veth down the host reached neither Redis nor PostgreSQL"
    assert done_at_cut < len(workload.lines), "the cut hit mid-run"
    assert settled.finished, f"{settled.never_done} export(s) never finished"
    assert settled.counts.get("failed", 0) == 0 and "applied-again" not in settled.counts, (settled.counts, failed)
    assert settled.findings.clean, settled.findings
    assert failed == []

    # Back to work once reconnected: with the other host stopped, only the cut one can apply these. (Checking
    # that it applied part of the run's rest would be a race: the other host may well have taken all of it.)
    other.stop()
    follow_up = [
        export_line(TENANT, f"after-cut-{i}", "Contact", proxyAddresses=[f"SMTP:after-cut-{i}@contoso.com"])
        for i in range(20)
    ]
    more = post_exports(follow_up, hosts.settings)
    assert wait_for(hosts.redis, more.batch, more.enqueued, timeout_s=120, poll_s=0.1), "the cut host applied none"
    assert cut.applied() >= applied_by_cut_at_restore + len(follow_up), "the host went back to work once reconnected"
    assert other.applied() > 0
