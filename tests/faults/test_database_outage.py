"""PostgreSQL unavailable for a few seconds mid-run: exports retry and complete, nothing is lost.

The outage is real for the workers: the test database refuses new connections and every open one
is cut (pg_terminate_backend), mid-transaction or not. Only this test's database is touched.
"""

from __future__ import annotations

import random
import time

import pytest

from shared.models import Tenant
from shared.progress import APPLIED_AGAIN
from tests.faults.cluster import Cluster, database_outage, eventually
from tests.faults.conftest import RecordFault
from tests.invariants import check_directory
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

    finished = cluster.wait(posted.batch, len(workload.lines), timeout_s=300)
    cluster.wait_until_idle()
    counts = cluster.outcomes(posted.batch)
    findings = check_directory(tenant.id, workload.final, workload.final.last_sequence)
    never_done = len(workload.lines) - cluster.done(posted.batch)
    record_fault(
        f"PostgreSQL down {OUTAGE_S:g} s mid-run ({cut} connections cut)",
        1,
        len(workload.lines),
        never_done + len(findings.lost),
        len(findings.duplicated) + counts.get(APPLIED_AGAIN, 0),
        time.monotonic() - started,
    )

    assert cut >= 2, "the workers' connections were cut"
    assert done_after_outage < len(workload.lines), "the outage hit mid-run"
    assert finished, f"{never_done} export(s) never finished"
    assert counts.get("failed", 0) == 0 and APPLIED_AGAIN not in counts, (
        counts,
        [f.message for f in failures(tenant.name)],
    )
    assert findings.clean, findings
    assert failures(tenant.name) == [], "a short outage is retried, never filed as a dead letter"
    logs = "".join(node.log_text() for node in cluster.nodes)
    assert "Retry in" in logs, "the workers met the outage and retried"
