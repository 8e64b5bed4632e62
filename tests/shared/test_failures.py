"""Failed exports and dead letters (shared.exports.failures): what is kept, against which object, and listed where."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from shared.core.export import ErrorCode, ExportRejected
from shared.exports.applier import ExportApplier
from shared.exports.failures import record_dead_letter, record_failure, retry_candidates, unattributed
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from tests.conftest import export_line


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
