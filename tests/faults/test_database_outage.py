"""PostgreSQL unavailable for a few seconds mid-run: exports retry and complete, nothing is lost.

The outage is real for the workers: the test database refuses new connections and every open one
is cut (pg_terminate_backend), mid-transaction or not. Only this test's database is touched.
"""

from __future__ import annotations

import random
import time

import pytest

from shared.store.tables import Tenant
from tests.faults.cluster import Cluster, database_outage, eventually
from tests.faults.conftest import RecordFault
from tests.workers.helpers import failures
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_S = 4.0


def test_exports_retry_through_a_database_outage_and_all_complete(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    workload = build(
        random.Random(13),
        tenant.name,
        anchors(users=120, groups=50, contacts=30),
        5,
        [f"db{i}@contoso.com" for i in range(30)],
    )
    cluster.node()
    cluster.node()
    started = time.monotonic()
    posted = cluster.post(workload.lines)
    eventually(lambda: cluster.done(posted.batch) >= 200, 180, "200 exports applied")

    cut = database_outage(OUTAGE_S)
    done_after_outage = cluster.done(posted.batch)

    settled = cluster.settle(tenant, workload, posted.batch, timeout_s=300)
    record_fault(
        f"PostgreSQL down {OUTAGE_S:g} s mid-run ({cut} connections cut)",
        1,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )

    assert cut >= 2, "the workers' connections were cut"
    assert done_after_outage < len(workload.lines), "the outage hit mid-run"
    settled.assert_complete()
    assert failures(tenant.name) == [], "a short outage is retried, never filed as a dead letter"
    logs = "".join(node.log_text() for node in cluster.nodes)
    assert "Retry in" in logs, "the workers met the outage and retried"
