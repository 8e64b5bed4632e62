"""Dead letters: an export that keeps killing its worker, runs out of retries or meets an error
retrying cannot fix is filed as `ApplyFailed` with its message, the reason and the attempt count;
`syncguard failures list` shows it and `syncguard failures retry` sends it again."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select, text

from shared.locks.manager import object_lock_key
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, Tenant
from tests.conftest import export_line
from tests.faults.cluster import Cluster, eventually, open_transaction, waiting_on_database_locks
from tests.faults.conftest import RecordFault
from tests.workers.helpers import failures, object_view

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CRASH_LIMIT = 2


def deliveries(cluster: Cluster) -> int:
    """The highest delivery count of any message in flight (shared.exports.crash_counter)."""
    counts = [int(cluster.redis.get(key) or 0) for key in cluster.redis.scan_iter("sg:delivery:*")]
    return max(counts, default=0)


def post_one(cluster: Cluster, line: str) -> str:
    posted = cluster.post([line])
    assert posted.enqueued == 1
    return posted.batch


def test_an_export_that_kills_its_worker_every_time_is_filed_after_the_crash_limit(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    started = time.monotonic()
    node = cluster.node(EXPORT_CRASH_LIMIT=str(CRASH_LIMIT))
    assert cluster.wait(
        post_one(cluster, export_line(tenant.name, "crasher", userPrincipalName="c1@contoso.com")), 1, 60
    )

    with open_transaction() as blocker:
        # The export blocks on its object's row; the test kills the pool process each time it does.
        blocker.execute(
            select(DirectoryObject.id)
            .where(DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == "crasher")
            .with_for_update()
        )
        batch = post_one(cluster, export_line(tenant.name, "crasher", sequence=2, userPrincipalName="c2@contoso.com"))
        for delivery in range(1, CRASH_LIMIT + 2):
            eventually(lambda: deliveries(cluster) == delivery, 60, f"delivery {delivery} started")  # noqa: B023
            eventually(lambda: waiting_on_database_locks() >= 1, 60, "the export is inside its transaction")
            (child,) = node.pool_pids()
            os.kill(child, signal.SIGKILL)
        assert cluster.wait(batch, 1, 60), "the next delivery is filed instead of tried"
    kills = CRASH_LIMIT + 1

    (dead,) = failures(tenant.name)
    crasher = object_view(tenant.name, "crasher")
    record_fault("pool process SIGKILLed on every delivery of one export", kills, 2, 0, 0, time.monotonic() - started)
    assert cluster.outcomes(batch) == {"failed": 1}
    assert dead.error_code == "ApplyFailed" and dead.source_anchor == "crasher"
    assert f"its worker died {kills} times" in dead.message and dead.attempts == kills
    assert json.loads(dead.raw or "")["sequence"] == 2, "the raw message is kept for the retry"
    assert crasher is not None and crasher.last_sequence == 1, "the dead letter was never half applied"
    assert node.alive(), "the node replaced its pool process each time"

    listed = cluster.syncguard("failures", "list", "--tenant", tenant.name, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(f["errorCode"], f["attempts"]) for f in json.loads(listed.stdout)] == [("ApplyFailed", kills)]

    retried = cluster.syncguard("failures", "retry", "--tenant", tenant.name, "--source-anchor", "crasher", "--wait")
    assert retried.returncode == 0, retried.stderr
    assert "re-sent 1 failed export(s)" in retried.stdout and "applied 1" in retried.stdout
    crasher = object_view(tenant.name, "crasher")
    assert crasher is not None and crasher.last_sequence == 2 and crasher.upn == "c2@contoso.com"
    assert failures(tenant.name) == [], "a success ends the failure"


@pytest.fixture
def poisoned_anchor() -> Iterator[str]:
    """A database trigger that refuses one object: an error no retry can fix."""
    anchor = f"poison-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        session.execute(
            text(
                "CREATE OR REPLACE FUNCTION sg_fault_poison() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'object % is poisoned', NEW.source_anchor; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER sg_fault_poison BEFORE INSERT ON directory_objects FOR EACH ROW "
                f"WHEN (NEW.source_anchor = '{anchor}') EXECUTE FUNCTION sg_fault_poison()"
            )
        )
    try:
        yield anchor
    finally:
        drop_poison()


def drop_poison() -> None:
    with transaction() as session:
        session.execute(text("DROP TRIGGER IF EXISTS sg_fault_poison ON directory_objects"))
        session.execute(text("DROP FUNCTION IF EXISTS sg_fault_poison()"))


def test_exhausted_retries_and_unexpected_errors_are_filed_and_failures_retry_sends_them_again(
    tenant: Tenant, cluster: Cluster, poisoned_anchor: str, record_fault: RecordFault
) -> None:
    started = time.monotonic()
    cluster.node(EXPORT_RETRY_LIMIT="2", LOCK_WAIT_S="0.2")
    # Another export holds the object's lock for good: every attempt finds it busy.
    lock = object_lock_key(tenant.name, "stuck")
    cluster.redis.set(lock, "held-by-the-test", px=120_000)
    posted = cluster.post(
        [
            export_line(tenant.name, "stuck", userPrincipalName="stuck@contoso.com"),
            export_line(tenant.name, poisoned_anchor, "Group", displayName="Poison"),
            export_line(tenant.name, "fine", userPrincipalName="fine@contoso.com"),
        ]
    )
    assert cluster.wait(posted.batch, 3, 120)

    filed = {f.source_anchor: f for f in failures(tenant.name)}
    record_fault("locks busy past every retry; a row the database refuses", 2, 3, 0, 0, time.monotonic() - started)
    assert cluster.outcomes(posted.batch) == {"failed": 2, "applied": 1}
    assert set(filed) == {"stuck", poisoned_anchor}
    stuck, poison = filed["stuck"], filed[poisoned_anchor]
    assert stuck.error_code == "ApplyFailed" and stuck.attempts == 3
    assert "gave up after 3 attempts (EXPORT_RETRY_LIMIT is 2)" in stuck.message and "LocksBusy" in stuck.message
    assert poison.error_code == "ApplyFailed" and poison.attempts == 1, "an error retrying cannot fix is not retried"
    assert "unexpected error" in poison.message and f"object {poisoned_anchor} is poisoned" in poison.message

    cluster.redis.delete(lock)
    drop_poison()
    retried = cluster.syncguard("failures", "retry", "--tenant", tenant.name, "--wait", "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["outcomes"] == {"applied": 2}
    assert failures(tenant.name) == []
    for anchor in ("stuck", poisoned_anchor, "fine"):
        view = object_view(tenant.name, anchor)
        assert view is not None and not view.deleted


def test_failures_retry_for_an_object_without_a_failure_says_so(tenant: Tenant, cluster: Cluster) -> None:
    done = cluster.syncguard("failures", "retry", "--tenant", tenant.name, "--source-anchor", "nobody")
    assert done.returncode == 1 and "has no failed export for sourceAnchor 'nobody'" in done.stderr
