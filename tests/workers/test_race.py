"""Many exports fighting over a small pool of values on several worker processes at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from redis import Redis

from shared.store.tables import Tenant
from tests.conftest import ARTIFACTS
from tests.invariants import assert_race_invariants, race_workload
from tests.workers.helpers import failures, post_and_wait, wait_until_idle

pytestmark = pytest.mark.integration

ROUNDS = 18


def test_racing_exports_never_give_one_value_two_holders(tenant: Tenant, redis_client: Redis, workers: object) -> None:
    """Besides one holder per value (`tests.invariants.check_directory`): no object keeps a claim on a
    value it no longer asks for, and every entry, as `errors list` and `object show` read it, names
    the object holding its value now, also where the stored name is a holder that has let go since."""
    workload = race_workload(tenant.name, seed=20261126, rounds=ROUNDS)

    started = time.perf_counter()
    counts = post_and_wait(redis_client, workload.lines, timeout_s=600)
    elapsed = time.perf_counter() - started
    wait_until_idle(redis_client)
    rate = len(workload.lines) / elapsed
    ARTIFACTS.mkdir(exist_ok=True)
    Path(ARTIFACTS, "race.json").write_text(
        json.dumps({"exports": len(workload.lines), "seconds": elapsed, "exports_per_s": rate, "outcomes": counts})
    )
    print(f"\nrace: {len(workload.lines)} exports in {elapsed:.2f} s = {rate:.0f} exports/s, outcomes {counts}")

    assert len(workload.lines) >= 1000
    assert sum(counts.values()) == len(workload.lines) and "failed" not in counts
    assert failures(tenant.name) == []
    report = assert_race_invariants(tenant.name, workload.final)
    print(
        f"race: {report.checks} invariant checks over {report.objects} objects, {report.entries} entries,"
        f" {report.renamed} of them naming a holder that took over"
    )
    assert report.entries > 0 and report.renamed > 0, "the race must leave waiters, some behind a new holder"
