"""A worker paused (SIGSTOP) while it holds its value locks, until they expire; meanwhile another
worker applies a conflicting export; then it resumes (SIGCONT). An expiring lock cannot guarantee
uniqueness on its own, so this is where the database has to: still no value with two holders, and
the paused export ends in quarantine or success, never in an error.

The test makes the pause land inside the locked section by holding a database lock the paused
worker's transaction has to wait for, so the timing is the test's, not luck's.
"""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import func, insert, select

from shared.locks.manager import value_lock_key
from shared.store.engine import transaction
from shared.store.tables import ClaimedValue, DirectoryObject, Tenant
from tests.conftest import export_line
from tests.faults.cluster import Cluster, Node, eventually, open_transaction, waiting_on_database_locks
from tests.faults.conftest import RecordFault
from tests.invariants import check_directory
from tests.workers.helpers import failures, object_view

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CONTESTED = "contested@contoso.com"
SHORT_TTL_MS = "1000"


def post_one(cluster: Cluster, line: str) -> str:
    posted = cluster.post([line])
    assert posted.enqueued == 1
    return posted.batch


def pause_once_its_locks_are_held(cluster: Cluster, node: Node, tenant: Tenant, waiters: int) -> None:
    """Wait until the node holds the contested value's lock and waits inside its transaction; pause
    it there; wait until the lock has expired under it."""
    lock = value_lock_key(tenant.name, CONTESTED)
    eventually(lambda: cluster.redis.exists(lock) == 1, 60, "the worker holds the value's lock")
    eventually(lambda: waiting_on_database_locks() >= waiters, 60, "the worker waits inside its transaction")
    node.pause()
    eventually(lambda: cluster.redis.exists(lock) == 0, 10, "the paused worker's lock expired")


def final_states(tenant: Tenant) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    final = {
        "paused": {"displayName": "Paused", "userPrincipalName": CONTESTED},
        "rival": {"displayName": "Rival", "userPrincipalName": CONTESTED},
    }
    return final, {"paused": 2, "rival": 1}


def test_a_paused_worker_resuming_after_its_locks_expired_quarantines_instead_of_taking_the_value(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    started = time.monotonic()
    paused = cluster.node(LOCK_TTL_MS=SHORT_TTL_MS)
    first = post_one(
        cluster, export_line(tenant.name, "paused", displayName="Paused", userPrincipalName="p@contoso.com")
    )
    assert cluster.wait(first, 1, 60)

    with open_transaction() as blocker:
        blocker.execute(
            select(DirectoryObject.id)
            .where(DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == "paused")
            .with_for_update()
        )
        stale = post_one(
            cluster,
            export_line(tenant.name, "paused", sequence=2, displayName="Paused", userPrincipalName=CONTESTED),
        )
        pause_once_its_locks_are_held(cluster, paused, tenant, waiters=1)
        cluster.node()  # the other worker
        rival = post_one(cluster, export_line(tenant.name, "rival", displayName="Rival", userPrincipalName=CONTESTED))
        assert cluster.wait(rival, 1, 60), "the other worker applied the conflicting export meanwhile"
    paused.resume()

    assert cluster.wait(stale, 1, 60)
    final, sequences = final_states(tenant)
    findings = check_directory(tenant.id, final, sequences)
    record_fault(
        "SIGSTOP while holding locks, until they expired; rival applied; SIGCONT",
        1,
        3,
        len(findings.lost),
        len(findings.duplicated),
        time.monotonic() - started,
    )
    assert cluster.outcomes(stale) == {"applied": 1}, "the paused export ends applied, not failed"
    holder, waiter = object_view(tenant.name, "rival"), object_view(tenant.name, "paused")
    assert holder is not None and waiter is not None
    assert holder.upn == CONTESTED
    assert waiter.upn is not None and waiter.upn.startswith("contested+")
    assert [(e["propertyValue"], e["conflictingObjectId"]) for e in waiter.entries] == [(CONTESTED, holder.object_id)]
    assert findings.clean, findings
    assert failures(tenant.name) == []


def test_when_both_wrote_the_value_the_unique_guard_lets_exactly_one_keep_it(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    """The paused worker decided to claim the value and got as far as writing it; the other worker
    decided the same under the locks it took after the expiry. The database lets one commit."""
    started = time.monotonic()
    paused = cluster.node(LOCK_TTL_MS=SHORT_TTL_MS)
    first = post_one(
        cluster, export_line(tenant.name, "paused", displayName="Paused", userPrincipalName="p@contoso.com")
    )
    assert cluster.wait(first, 1, 60)
    with transaction() as session:
        bystander = session.scalars(
            insert(DirectoryObject)
            .values(
                tenant_id=tenant.id,
                source_anchor="bystander",
                object_id=str(uuid.uuid4()),
                object_class="Contact",
                wanted_proxy_addresses=[],
                proxy_addresses=[],
                attributes={},
                last_sequence=1,
                deleted=False,
            )
            .returning(DirectoryObject.id)
        ).one()

    with open_transaction() as blocker:
        # Uncommitted, so invisible to the workers' reads: each plans to claim the value, and its
        # INSERT waits on this row's fate.
        blocker.execute(insert(ClaimedValue).values(tenant_id=tenant.id, key=CONTESTED, object_pk=bystander))
        stale = post_one(
            cluster,
            export_line(tenant.name, "paused", sequence=2, displayName="Paused", userPrincipalName=CONTESTED),
        )
        pause_once_its_locks_are_held(cluster, paused, tenant, waiters=1)
        cluster.node()
        rival = post_one(cluster, export_line(tenant.name, "rival", displayName="Rival", userPrincipalName=CONTESTED))
        eventually(lambda: waiting_on_database_locks() >= 2, 60, "the other worker is writing the value too")
    paused.resume()

    assert cluster.wait(stale, 1, 60) and cluster.wait(rival, 1, 60)
    final, sequences = final_states(tenant)
    findings = check_directory(tenant.id, final, sequences)
    record_fault(
        "SIGSTOP mid-write, until its locks expired; rival writes too; SIGCONT",
        1,
        3,
        len(findings.lost),
        len(findings.duplicated),
        time.monotonic() - started,
    )
    assert cluster.outcomes(stale) == {"applied": 1} and cluster.outcomes(rival) == {"applied": 1}
    views = {anchor: object_view(tenant.name, anchor) for anchor in ("paused", "rival")}
    holders = [anchor for anchor, view in views.items() if view is not None and CONTESTED in view.held]
    assert len(holders) == 1, f"exactly one holder, not {holders}"
    (loser,) = {"paused", "rival"} - set(holders)
    loser_view, holder_view = views[loser], views[holders[0]]
    assert loser_view is not None and holder_view is not None
    assert [e["conflictingObjectId"] for e in loser_view.entries] == [holder_view.object_id]
    with transaction() as session:
        claims = session.scalar(
            select(func.count()).where(ClaimedValue.tenant_id == tenant.id, ClaimedValue.key == CONTESTED)
        )
    assert claims == 1
    assert findings.clean, findings
    assert failures(tenant.name) == []
