"""The broker Redis (its own instance, AOF on) killed and restarted: no export lost, none doubled.

Also what a producer sees: `syncguard post` reports an export as enqueued only once the broker has
it, fails clearly (exit 1, how many were enqueued) when the broker goes away, and posting the same
file again is harmless.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from pathlib import Path

import pytest

from shared.exports.producer import LEDGER_CHUNK
from shared.store.tables import Tenant
from tests.faults.cluster import Cluster, eventually
from tests.faults.conftest import RecordFault
from tests.invariants import check_directory
from tests.workers.helpers import failures
from tests.workload import anchors, build

pytestmark = [pytest.mark.integration, pytest.mark.faults]

POOL = [f"pool{i}@contoso.com" for i in range(40)]


def test_the_broker_killed_and_restarted_mid_run_loses_nothing(
    tenant: Tenant, cluster: Cluster, record_fault: RecordFault
) -> None:
    workload = build(random.Random(7), tenant.name, anchors(users=150, groups=60, contacts=30), 5, POOL)
    cluster.node()
    cluster.node()
    cluster.beat()
    started = time.monotonic()
    posted = cluster.post(workload.lines)
    assert posted.enqueued == len(workload.lines) == 1200

    eventually(lambda: cluster.done(posted.batch) >= 300, 180, "300 exports applied")
    cluster.broker.kill()
    done_at_kill = cluster.done(posted.batch)
    time.sleep(3)
    cluster.broker.start()

    settled = cluster.settle(tenant, workload, posted.batch, timeout_s=300)
    record_fault(
        "broker Redis SIGKILLed mid-run, restarted 3 s later from its AOF",
        1,
        settled.exports,
        settled.lost,
        settled.duplicated,
        time.monotonic() - started,
    )

    assert done_at_kill < len(workload.lines), "the broker died mid-run"
    settled.assert_complete()
    assert failures(tenant.name) == []


def test_post_with_the_broker_down_fails_clearly_and_enqueues_nothing(
    tenant: Tenant, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.broker.kill()
    exports = tmp_path / "exports.jsonl"
    exports.write_text(
        f'{{"tenant": "{tenant.name}", "sourceAnchor": "a", "objectClass": "Group", "operation": "add", "sequence": 1}}\n'
    )
    post = cluster.syncguard("post", str(exports), background=True)
    try:
        _, stderr = post.communicate(timeout=30)  # a deadline, not a measurement: a post must not hang
    except subprocess.TimeoutExpired:
        post.kill()
        pytest.fail(f"syncguard post still ran 30 s after the broker went down: {post.communicate()[1][-2000:]}")
    assert post.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert f"could not reach the Celery broker at {cluster.broker.url}" in stderr
    assert "0 export(s) were enqueued" in stderr and "Posting the same lines again is safe" in stderr


def test_a_post_cut_off_by_the_broker_says_what_it_enqueued_and_a_rerun_is_harmless(
    tenant: Tenant, cluster: Cluster, tmp_path: Path, record_fault: RecordFault
) -> None:
    workload = build(random.Random(11), tenant.name, anchors(users=100, groups=60, contacts=40), 5, POOL)
    exports = tmp_path / "exports.jsonl"
    exports.write_text("\n".join(workload.lines) + "\n")
    started = time.monotonic()

    posting = cluster.syncguard("post", str(exports), background=True)
    broker = cluster.broker.client()
    eventually(lambda: broker.llen("exports") >= 200, 60, "200 exports on the queue")
    cluster.broker.kill()
    _, stderr = posting.communicate(timeout=120)
    assert posting.returncode == 1, stderr
    assert "Traceback" not in stderr
    said = re.search(r"(\d+) export\(s\) were enqueued before line (\d+)", stderr)
    assert said is not None, stderr
    reported = int(said.group(1))
    assert 200 <= reported < len(workload.lines)

    cluster.broker.start()
    queued = cluster.broker.client().llen("exports")
    # Every export reported as enqueued survived the broker's death (AOF); at most the chunk in flight
    # when it died (one pipeline of LEDGER_CHUNK) was written without the producer hearing back.
    assert reported <= queued <= reported + LEDGER_CHUNK, (reported, queued)

    cluster.node()
    rerun = cluster.syncguard("post", str(exports), "--wait", "--timeout", "240")
    assert rerun.returncode == 0, rerun.stderr
    assert f"enqueued {len(workload.lines)} export(s)" in rerun.stdout
    cluster.wait_until_idle()
    findings = check_directory(tenant.id, workload.final, workload.final.last_sequence)
    record_fault(
        "broker SIGKILLed during `syncguard post`; same file posted again",
        1,
        reported + len(workload.lines),
        len(findings.lost),
        len(findings.duplicated),
        time.monotonic() - started,
    )
    assert findings.clean, findings
    assert failures(tenant.name) == []
