"""The Redis at REDIS_URL (value locks, the post ledger, delivery counters, RedBeat), distinct from the
broker, SIGKILLed mid-run and started again seconds later: no export lost, none applied twice.

It runs with AOF (`appendfsync everysec`), as docs/durability.md asks of REDIS_URL: the ledger is
what `post --wait` counts and what beat re-sends lost messages from, so a REDIS_URL without
persistence would come back without the posts in flight (their exports still apply, but `--wait`
could not see them done and a message the broker lost meanwhile would not be sent again). A killed
Redis process loses no write it acknowledged, so the ledger survives whole.

The locks do not: the outage outlasts LOCK_TTL_MS, so every lock held at the kill has expired when
Redis is back, while its holder may still be in its transaction, and its release was refused. That
is the case an expiring lock cannot cover, and it stays correct without the locks: a worker takes
the object's row `FOR UPDATE` before it reads or decides anything, and the claims table's primary key
refuses a second holder of a value (`ClaimTaken`, decided again). A delivery counter lost with a
failed `end_deliveries` at worst counts one more delivery, a dropped wake-up at worst costs a waiter
its blocking wait. Meanwhile every Redis error is transient: the export is retried with back-off,
or its batch goes back on the queue, and never becomes a dead letter for a few seconds of outage.
"""

from __future__ import annotations

import random
import time

import pytest

from shared.store.tables import Tenant
from tests.faults.cluster import Beat, Cluster, eventually
from tests.faults.conftest import RecordFault
from tests.workers.helpers import failures
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

POOL = [f"state{i}@contoso.com" for i in range(40)]
OUTAGE_S = 5.0  # above the fault settings' LOCK_TTL_MS (3 s)
BEAT_LOOP_S = 6  # beat_max_loop_interval (5 s) and a margin: a beat that lost its lock has exited by then


def _survives(beat: Beat, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while beat.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    return beat.alive()


def test_the_lock_and_ledger_redis_killed_mid_run_loses_and_doubles_nothing(
    tenant: Tenant, own_redis_cluster: Cluster, record_fault: RecordFault
) -> None:
    cluster = own_redis_cluster
    assert cluster.state is not None and cluster.redis_url != cluster.broker.url
    workload = build(random.Random(29), tenant.name, anchors(users=150, groups=60, contacts=30), 5, POOL)
    cluster.node()
    cluster.node()
    beat = cluster.beat()
    started = time.monotonic()
    posted = cluster.post(workload.lines)
    assert posted.enqueued == len(workload.lines) == 1200

    eventually(lambda: cluster.done(posted.batch) >= 300, 180, "300 exports applied")
    done_before_kill = cluster.done(posted.batch)
    cluster.state.kill()
    time.sleep(OUTAGE_S)
    cluster.state.start()
    done_after_restart = cluster.done(posted.batch)
    # RedBeat exits when it cannot renew its lock (so that two beats never schedule at once), and the
    # platform starts it again (compose's `restart: unless-stopped`, a Deployment): do what it does.
    beat_restarted = not _survives(beat, BEAT_LOOP_S)
    if beat_restarted:
        cluster.beat()

    settled = cluster.settle(tenant, workload, posted.batch, timeout_s=300)
    record_fault(
        f"locks/ledger Redis SIGKILLed mid-run, back {OUTAGE_S:g} s later (AOF)"
        + ("; beat restarted" if beat_restarted else ""),
        1,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )

    assert done_before_kill < len(workload.lines), "Redis died mid-run"
    assert done_after_restart >= done_before_kill, "the ledger came back from the AOF"
    settled.assert_complete()
    logs = "".join(node.log_text() for node in cluster.nodes)
    assert "Connection refused" in logs, "the workers met the outage"
    # A dead letter filed while Redis was away would not show in the end: its end is not recorded in
    # the ledger either, so beat re-sends it as stranded and the success clears it. The log keeps it.
    assert "filed as a dead letter" not in logs, "a few seconds without Redis are retried, never dead letters"
    assert failures(tenant.name) == []
