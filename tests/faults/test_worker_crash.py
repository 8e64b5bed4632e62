"""kill -9 of one of two worker nodes in the middle of 5,000 exports: after a restart, every export
is applied exactly once and the race invariants hold."""

from __future__ import annotations

import json
import random
import time
import uuid

import pytest

from shared.exports.applier import ExportApplier
from shared.exports.crash_counter import begin_delivery
from shared.exports.producer import producer_app
from shared.messaging import send_export
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.faults.cluster import Cluster, eventually
from tests.faults.conftest import RecordFault
from tests.workers.helpers import failures, object_view
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OBJECTS = anchors(users=600, groups=250, contacts=150)
ROUNDS = 5
POOL = [f"pool{i}@contoso.com" for i in range(80)]  # enough conflicts to test, few enough retries to be quick


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    workload = build(random.Random(20261127), tenant.name, OBJECTS, ROUNDS, POOL)
    victim = cluster.node()
    cluster.node()
    cluster.beat()  # re-sends anything the broker lost on the way
    started = time.monotonic()

    posted = cluster.post(workload.lines)
    assert posted.enqueued == len(workload.lines) == 5000 and not posted.rejected
    eventually(lambda: cluster.done(posted.batch) >= 1500, 240, "a third of the exports applied")
    assert victim.pool_pids(), "the victim has a pool process working"
    victim.kill9()
    done_at_kill = cluster.done(posted.batch)
    in_flight_at_kill = cluster.broker.client().hlen("unacked")
    cluster.node()  # the restart

    settled = cluster.settle(tenant, workload, posted.batch, timeout_s=300)
    record_fault(
        "kill -9 of one of two worker nodes mid-run (then a restart)",
        1,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )
    print(f"\nkilled with {done_at_kill} done and {in_flight_at_kill} unacknowledged; outcomes {settled.counts}")

    assert 1500 <= done_at_kill < len(workload.lines), "the kill landed mid-run"
    settled.assert_complete()
    assert failures(tenant.name) == []


def test_an_export_redelivered_after_its_commit_still_hands_its_freed_value_over(
    tenant: Tenant, cluster: Cluster, applier: ExportApplier, record_fault: RecordFault
) -> None:
    """A worker that dies between its commit and enqueueing the fast release: the redelivered copy is
    skipped (already applied), and must not leave the waiter waiting for the hourly sweep."""
    cluster.node()
    posted = cluster.post(
        [
            export_line(tenant.name, "holder", userPrincipalName="kept@contoso.com"),
            export_line(tenant.name, "waiter", userPrincipalName="kept@contoso.com"),
        ]
    )
    assert cluster.wait(posted.batch, 2, 60)
    freeing = export_line(tenant.name, "holder", sequence=2, userPrincipalName="moved@contoso.com")
    applier.apply(freeing)  # the first delivery: committed, then its worker died before the fast release
    task_id = str(uuid.uuid4())
    begin_delivery(cluster.redis, task_id, 0, None, None)  # ... and never ended

    send_export(producer_app(cluster.settings), json.loads(freeing), tenant=tenant.name, task_id=task_id)

    def waiter_holds_it() -> bool:
        waiter = object_view(tenant.name, "waiter")
        return waiter is not None and waiter.upn == "kept@contoso.com"

    started = time.monotonic()
    eventually(waiter_holds_it, 30, "the waiter got the value the redelivered export freed")
    record_fault(
        "worker died between its commit and the fast release (simulated)", 1, 3, 0, 0, time.monotonic() - started
    )
