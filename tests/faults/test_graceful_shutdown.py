"""SIGTERM to a worker (what Kubernetes and Docker send): it finishes or returns its current exports,
and nothing is half applied, since each export is one transaction."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from sqlalchemy import select

from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, Tenant
from tests.faults.cluster import Cluster, eventually
from tests.faults.conftest import RecordFault
from tests.invariants import check_directory
from tests.workers.helpers import failures
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def desired_by_sequence(lines: list[str]) -> dict[tuple[str, int], dict[str, Any] | None]:
    """Every export's full desired state, by object and sequence (None: a delete)."""
    exports = (json.loads(line) for line in lines)
    return {
        (e["sourceAnchor"], e["sequence"]): None if e["operation"] == "delete" else e["attributes"] for e in exports
    }


def test_sigterm_finishes_or_returns_every_export_and_leaves_nothing_half_applied(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    workload = build(
        random.Random(17),
        tenant.name,
        anchors(users=90, groups=40, contacts=20),
        4,
        [f"t{i}@contoso.com" for i in range(30)],
    )
    node = cluster.node(concurrency=2)
    started = time.monotonic()
    posted = cluster.post(workload.lines)
    eventually(lambda: cluster.done(posted.batch) >= 120, 180, "120 exports applied")

    exit_code = node.terminate(timeout_s=60)
    done_at_stop = cluster.done(posted.batch)
    unacked = cluster.broker.client().hlen("unacked")
    not_done, queued = cluster.pending_indices(posted.batch), cluster.queued_indices(posted.batch)
    releases_queued = cluster.queued_release_keys()
    # Whatever the store holds now is, object by object, exactly one export's complete state.
    with transaction() as session:
        reached = dict(
            session.execute(
                select(DirectoryObject.source_anchor, DirectoryObject.last_sequence).where(
                    DirectoryObject.tenant_id == tenant.id
                )
            ).all()
        )
    exports = desired_by_sequence(workload.lines)
    halfway = check_directory(
        tenant.id, {a: exports[(a, s)] for a, s in reached.items()}, reached, releases_queued=releases_queued
    )

    cluster.node()
    finished = cluster.wait(posted.batch, len(workload.lines), timeout_s=240)
    cluster.wait_until_idle()
    findings = check_directory(tenant.id, workload.final, workload.final.last_sequence)
    record_fault(
        "SIGTERM to a worker mid-run (warm shutdown), then a new one",
        1,
        len(workload.lines),
        len(workload.lines) - cluster.done(posted.batch) + len(findings.lost),
        len(findings.duplicated),
        time.monotonic() - started,
    )

    assert exit_code == 0, "a warm shutdown, not a crash"
    assert done_at_stop < len(workload.lines), "the worker stopped mid-run"
    assert unacked == 0 and len(not_done) == len(workload.lines) - done_at_stop
    assert not_done <= queued, "every export the worker did not finish is back on the queue"
    assert halfway.clean, halfway
    assert "WorkerLostError" not in node.log_text()
    assert finished and findings.clean, findings
    assert failures(tenant.name) == []
