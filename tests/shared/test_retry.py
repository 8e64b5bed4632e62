"""Sending failed exports again (shared/exports/retry.py), the code of `failures retry` and of the web
report's retry buttons. The kept lines here are invalid, so a line that was sent is filed again at once
with one more attempt, and nothing reaches the broker."""

from __future__ import annotations

from collections.abc import Callable

from shared.exports.failures import FailureRecord, record_failures
from shared.exports.retry import retry_failed_exports
from shared.settings import get_settings
from shared.store.engine import get_engine
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.workers.helpers import failures


def file_invalid(tenant: Tenant, *anchors: str) -> None:
    """Failed exports whose kept line is still invalid (a UPN without an @)."""
    records = [
        FailureRecord(
            tenant.name,
            anchor,
            "User",
            "DataValidationFailed",
            "bad UPN",
            export_line(tenant.name, anchor, userPrincipalName="x"),
        )
        for anchor in anchors
    ]
    with get_engine().begin() as connection:
        record_failures(connection, records)


def attempts(tenant: Tenant) -> dict[str, int]:
    return {f.source_anchor or "": f.attempts for f in failures(tenant.name)}


def test_a_retry_of_some_rows_sends_those_and_no_other(tenant: Tenant, make_tenant: Callable[..., Tenant]) -> None:
    other = make_tenant()
    file_invalid(tenant, "a", "b", "c", "d")
    file_invalid(other, "theirs")
    ids = {f.source_anchor: f.id for f in failures(tenant.name)}
    (theirs,) = failures(other.name)

    retried = retry_failed_exports(get_settings(), tenant.name, failure_ids=[ids["b"], ids["d"], theirs.id])

    assert retried.found == 2, "another tenant's row is not this tenant's to send"
    assert (retried.sent.enqueued, retried.sent.rejected_count) == (0, 2)
    assert attempts(tenant) == {"a": 1, "b": 2, "c": 1, "d": 2}
    assert attempts(other) == {"theirs": 1}


def test_without_ids_a_retry_sends_every_row_and_with_none_it_sends_nothing(tenant: Tenant) -> None:
    file_invalid(tenant, "a", "b")
    assert retry_failed_exports(get_settings(), tenant.name).found == 2
    assert attempts(tenant) == {"a": 2, "b": 2}
    nothing = retry_failed_exports(get_settings(), tenant.name, failure_ids=[])
    assert (nothing.found, nothing.sent.enqueued, nothing.sent.rejected_count) == (0, 0, 0)
    assert attempts(tenant) == {"a": 2, "b": 2}


def test_one_objects_retry_sends_its_row_only(tenant: Tenant) -> None:
    file_invalid(tenant, "a", "b")
    assert retry_failed_exports(get_settings(), tenant.name, source_anchor="b").found == 1
    assert attempts(tenant) == {"a": 1, "b": 2}
