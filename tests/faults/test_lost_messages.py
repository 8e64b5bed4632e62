"""Messages the broker lost after `post` was told they were enqueued are sent again and applied.

kombu's Redis transport pops a message and only then files it as unacknowledged; a worker or broker
dying between the two loses it. The test does the same thing on purpose (it takes messages off the
queue), and beat's redelivery has to notice from the pending ledger and send them again.
"""

from __future__ import annotations

import random
import time

import pytest

from shared.store.tables import Tenant
from tests.faults.cluster import Cluster
from tests.faults.conftest import RecordFault
from tests.workers.helpers import failures
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

LOST = 5


def test_exports_the_broker_lost_are_sent_again_and_applied(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    workload = build(
        random.Random(19),
        tenant.name,
        anchors(users=60, groups=20, contacts=20),
        3,
        [f"l{i}@contoso.com" for i in range(20)],
    )
    started = time.monotonic()
    posted = cluster.post(workload.lines)
    broker = cluster.broker.client()
    # The newest messages: the last exports of their objects, so losing them would show in the store.
    for _ in range(LOST):
        assert broker.lpop("exports") is not None
    cluster.node()
    cluster.beat()

    settled = cluster.settle(tenant, workload, posted.batch, timeout_s=120)
    record_fault(
        f"{LOST} enqueued messages lost by the broker (taken off its queue)",
        LOST,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )

    settled.assert_complete()
    assert f"re-sent {LOST} stranded export(s) of batch {posted.batch}" in "".join(n.log_text() for n in cluster.nodes)
    assert failures(tenant.name) == []
