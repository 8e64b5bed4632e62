"""A corpus of bad input (bad_inputs.jsonl), straight onto the queue and through `syncguard post`:
each case ends as a failed export with its error code and a message naming the problem; the worker
never dies; the valid exports sent in between all apply."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import delete, or_, select

from shared.exports.failures import identity_of
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from tests.conftest import export_line
from tests.faults.cluster import Cluster
from tests.faults.conftest import RecordFault
from tests.faults.corpus import BadInput, load
from tests.workers.helpers import object_view

pytestmark = [pytest.mark.integration, pytest.mark.faults]

UNKNOWN_TENANT = "nosuch-h5-tenant"


@pytest.fixture
def since() -> Iterator[datetime]:
    """When the test began; the failures it filed outside its tenant are removed afterwards."""
    started = datetime.now(UTC)
    yield started
    with transaction() as session:
        session.execute(
            delete(FailedExport).where(
                FailedExport.last_failed >= started,
                or_(FailedExport.tenant.is_(None), FailedExport.tenant.not_in(select(Tenant.name))),
            )
        )


def forms(case: BadInput) -> list[tuple[str, Any]]:
    """The text as a producer writes it, and the decoded JSON as a Celery client could send it."""
    sent = [("text", case.text)]
    if case.is_json and not isinstance(case.message, str):
        sent.append(("decoded", case.message))
    return sent


def filed_for(message: Any, rows: list[FailedExport]) -> FailedExport | None:
    """The failed export a message ended as: by its object when it names one, else by its text."""
    identity = identity_of(message)
    if identity["tenant"] and identity["source_anchor"]:
        for row in rows:
            if (row.tenant, row.source_anchor) == (identity["tenant"], identity["source_anchor"]):
                return row
    text = (message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)).replace("\x00", "\\u0000")
    if len(text) <= 1000:
        return next((row for row in rows if row.raw == text), None)
    return next((row for row in rows if row.raw is not None and row.raw.startswith(text[:1000])), None)


def test_every_bad_input_is_filed_with_its_code_and_reason_and_the_worker_keeps_going(
    tenant: Tenant, cluster: Cluster, since: datetime, record_fault: RecordFault
) -> None:
    cases = load(tenant.name)
    assert len({c.case for c in cases}) == len(cases) >= 50
    node = cluster.node()
    pids_before = (node.pid, node.pool_pids())
    started = time.monotonic()

    messages: list[Any] = []
    bad: list[tuple[BadInput, str, Any]] = []
    valid: list[str] = []
    for number, case in enumerate(cases):
        for form, message in forms(case):
            messages.append(message)
            bad.append((case, form, message))
            anchor = f"ok-{number}-{form}"
            messages.append(json.loads(export_line(tenant.name, anchor, userPrincipalName=f"{anchor}@contoso.com")))
            valid.append(anchor)
    batch = cluster.send_raw(messages)
    assert cluster.wait(batch, len(messages), timeout_s=240), "every message was handled"

    with transaction() as session:
        rows = list(session.scalars(select(FailedExport).where(FailedExport.last_failed >= since)))
    unexplained = []
    for case, form, message in bad:
        row = filed_for(message, rows)
        if row is None or row.error_code != case.code or case.fragment not in row.message:
            found = "nothing" if row is None else f"{row.error_code}: {row.message[:160]!r}"
            unexplained.append(f"{case.case} [{form}]: want {case.code} with {case.fragment!r}, got {found}")
    not_applied = [a for a in valid if (view := object_view(tenant.name, a)) is None or view.deleted]
    record_fault(
        f"bad input: {len(cases)} cases, {len(bad)} malformed messages between valid ones",
        len(bad),
        len(messages),
        len(not_applied) + len(unexplained),
        0,
        time.monotonic() - started,
    )

    assert unexplained == []
    assert not_applied == []
    assert cluster.outcomes(batch) == {"failed": len(bad), "applied": len(valid)}
    assert node.alive() and (node.pid, node.pool_pids()) == pids_before, "the worker and its pool process lived"
    log = node.log_text()
    assert "WorkerLostError" not in log and "unexpected error" not in log


def test_syncguard_post_rejects_the_same_corpus_line_by_line_and_lists_the_unattributed(
    tenant: Tenant, cluster: Cluster, since: datetime
) -> None:
    cases = load(tenant.name)
    posted = cluster.post([c.text for c in cases])

    by_line = {r.line: r for r in posted.rejected}
    wrong = []
    for line, case in enumerate(cases, start=1):
        if not case.text.strip():
            assert line not in by_line, "a blank line is skipped, not an error"
            continue
        if case.case == "unknown tenant":  # only a worker knows which tenants exist
            assert line not in by_line
            continue
        rejection = by_line.get(line)
        if rejection is None or rejection.code != case.code or case.fragment not in rejection.error:
            wrong.append(f"{case.case}: {rejection}")
    assert wrong == []
    assert posted.enqueued == 1

    cluster.node()
    assert cluster.wait(posted.batch, 1, 60)
    listed = cluster.syncguard("failures", "list", "--unattributed", "--json")
    assert listed.returncode == 0, listed.stderr
    unattributed = json.loads(listed.stdout)
    assert any(f["tenant"] == UNKNOWN_TENANT and "does not exist" in f["message"] for f in unattributed)
    assert any(f["tenant"] is None and "not valid JSON" in f["message"] for f in unattributed)
    assert all(f["tenant"] != tenant.name for f in unattributed), "a tenant's own failures are attributed"
    usage = cluster.syncguard("failures", "list")
    assert usage.returncode == 2 and "--unattributed" in usage.stderr
