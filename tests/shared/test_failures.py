"""Failed exports and dead letters (shared.exports.failures): what is kept, against which object, and listed where."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from shared.core.export import ErrorCode, ExportRejected
from shared.exports import failures as failures_module
from shared.exports.applier import ExportApplier
from shared.exports.failures import (
    FailureFiling,
    FailureRecord,
    record_dead_letter,
    record_failure,
    record_failures,
    retry_candidates,
    retry_messages,
    unattributed,
)
from shared.settings import get_settings
from shared.store.engine import get_engine, transaction
from shared.store.tables import FailedExport, Tenant
from tests.conftest import export_line
from tests.workers.helpers import failures


@pytest.fixture
def stray_tenant() -> Iterator[str]:
    """A tenant name that exists nowhere; its failures are removed afterwards."""
    name = "no-such-tenant-failures"
    yield name
    with transaction() as session:
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def test_a_dead_letter_is_filed_against_its_object_with_the_message_and_the_attempts(tenant: Tenant) -> None:
    message = json.loads(export_line(tenant.name, "obj", userPrincipalName="o@contoso.com"))
    with transaction() as session:
        record_dead_letter(session, message, "gave up after 51 attempts", attempts=51)
    with transaction() as session:
        (row,) = retry_candidates(session, tenant.name, "obj")
    assert (row.error_code, row.attempts, row.object_class) == ("ApplyFailed", 51, "User")
    assert json.loads(row.raw or "") == message


def test_an_older_export_failing_later_keeps_the_newer_message_for_the_retry(tenant: Tenant) -> None:
    newer = export_line(tenant.name, "obj", sequence=5, userPrincipalName="new@contoso.com")
    older = export_line(tenant.name, "obj", sequence=4, userPrincipalName="old@contoso.com")
    with transaction() as session:
        record_dead_letter(session, newer, "gave up", attempts=3)
        record_failure(
            session,
            ExportRejected(ErrorCode.LARGE_OBJECT, "too big", tenant=tenant.name, source_anchor="obj", raw=older),
        )
    with transaction() as session:
        (row,) = retry_candidates(session, tenant.name)
    assert json.loads(row.raw or "")["sequence"] == 5 and row.error_code == "ApplyFailed" and row.attempts == 4


def test_text_postgresql_cannot_store_is_kept_escaped(stray_tenant: str) -> None:
    with transaction() as session:
        record_dead_letter(session, "not json \x00 with a NUL and a half pair \ud800", "unexpected error", attempts=1)
        record_dead_letter(session, {"tenant": stray_tenant, "sourceAnchor": "x"}, "unexpected error", attempts=1)
    with transaction() as session:
        raws = {f.raw for f in unattributed(session)}
        tenants = {f.tenant for f in unattributed(session)}
    assert "not json \\u0000 with a NUL and a half pair \\ud800" in raws
    assert stray_tenant in tenants, "a failure of a tenant that does not exist is listed as unattributed"
    with transaction() as session:
        session.execute(delete(FailedExport).where(FailedExport.raw.like("not json \\\\u0000%")))


def test_an_older_export_applied_late_does_not_clear_the_failure_of_a_newer_one(
    tenant: Tenant, applier: ExportApplier
) -> None:
    newer = export_line(tenant.name, "late", sequence=5, userPrincipalName="late5@contoso.com")
    with transaction() as session:
        record_dead_letter(session, newer, "its worker kept dying", attempts=4)
    assert applier.apply(
        export_line(tenant.name, "late", sequence=3, userPrincipalName="late3@contoso.com")
    ).status == ("applied")
    with transaction() as session:
        (kept,) = retry_candidates(session, tenant.name, "late")
    assert json.loads(kept.raw or "")["sequence"] == 5, "the newer export's failure must stay in the report"
    assert applier.apply(newer).status == "applied"
    with transaction() as session:
        assert retry_candidates(session, tenant.name, "late") == []


def test_failures_filed_in_bulk_follow_the_rules_of_filing_them_one_by_one(tenant: Tenant) -> None:
    name = tenant.name
    with transaction() as session:
        record_dead_letter(session, export_line(name, "a", sequence=5, userPrincipalName="a@x.com"), "gave up", 2)

    def record(anchor: str | None, message: str, raw: str) -> FailureRecord:
        return FailureRecord(name, anchor, "User" if anchor else None, "DataValidationFailed", message, raw)

    with get_engine().begin() as connection:
        record_failures(
            connection,
            [
                record("a", "an older export of a", export_line(name, "a", sequence=4)),
                record("b", "b at 1", export_line(name, "b", sequence=1)),
                record(None, "not JSON", "junk"),
                record("b", "b at 2", export_line(name, "b", sequence=2)),
                record("b", "b at 1 again, late", export_line(name, "b", sequence=1)),
                record(None, "not JSON", "junk"),
            ],
        )
    rows = {(f.source_anchor, f.id): f for f in failures(name)}
    (a,) = [f for (anchor, _), f in rows.items() if anchor == "a"]
    (b,) = [f for (anchor, _), f in rows.items() if anchor == "b"]
    loose = [f for (anchor, _), f in rows.items() if anchor is None]
    assert (a.error_code, a.attempts, json.loads(a.raw or "")["sequence"]) == ("ApplyFailed", 3, 5), (
        "an older export failing later only counts: the newer message stays for the retry"
    )
    assert (b.message, b.attempts, json.loads(b.raw or "")["sequence"]) == ("b at 2", 3, 2), "one row per object"
    assert [(f.raw, f.attempts) for f in loose] == [("junk", 1), ("junk", 1)], "no object: a row each"


def test_a_filing_holds_no_more_than_a_chunk_of_failures(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failures_module, "FLUSH_ROWS", 3)
    filing = FailureFiling(get_settings().database_url)
    for n in range(7):
        filing.add(FailureRecord(tenant.name, None, None, "DataValidationFailed", "not JSON", f"junk {n}"))
        assert len(filing.pending) < 3
    assert len(failures(tenant.name)) == 6, "filed as they came, two chunks of three"
    filing.flush()
    assert [f.raw for f in failures(tenant.name)] == [f"junk {n}" for n in range(7)]


def test_a_retry_reads_the_failures_on_file_when_it_began_a_page_at_a_time(tenant: Tenant) -> None:
    with get_engine().begin() as connection:
        record_failures(
            connection,
            [FailureRecord(tenant.name, None, None, "DataValidationFailed", "x", f"line {n}") for n in range(5)],
        )
    read = retry_messages(get_settings().database_url, tenant.name, page=2)
    first = [next(read), next(read), next(read)]
    with get_engine().begin() as connection:  # what the retry itself files meanwhile is not read again
        record_failures(connection, [FailureRecord(tenant.name, None, None, "DataValidationFailed", "x", "filed anew")])
    assert first + list(read) == [f"line {n}" for n in range(5)]
