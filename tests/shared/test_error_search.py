"""`errors list --search-string` picks among three ways to answer; all three give the same rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared import queries
from shared.exports.applier import ExportApplier
from shared.queries import error_search
from shared.queries.options import SortDirection
from shared.queries.provisioning_errors import ErrorFilter, entries_with_holders, error_row
from shared.store.engine import transaction
from shared.store.tables import Tenant
from tests.conftest import export_line


@pytest.fixture
def conflicted(make_tenant: Callable[..., Tenant], applier: ExportApplier) -> Tenant:
    """Sixty waiting objects with varied names and values, so searches match many, few or none."""
    tenant = make_tenant()
    for n in range(60):
        value = f"shared{n % 7}@contoso.com"
        applier.apply(export_line(tenant.name, f"holder-{n % 7}", "Contact", proxyAddresses=[f"SMTP:{value}"]))
        applier.apply(
            export_line(
                tenant.name,
                f"waiter-{n}",
                displayName=f"{'Team' if n % 3 else 'Person'} {n:03d}_x%",
                userPrincipalName=f"waiter{n}@contoso.com",
                proxyAddresses=[f"smtp:{value}"],
            )
        )
    return tenant


def _keys(rows: list[queries.ProvisioningErrorRow]) -> list[tuple[str, str]]:
    return [(row.source_anchor, row.property_value) for row in rows]


@pytest.mark.parametrize("search", ["person", "TEAM 01", "shared3@", "waiter5", "_x%", "%", "nothing-like-it", "0"])
@pytest.mark.parametrize("direction", [SortDirection.ASCENDING, SortDirection.DESCENDING])
def test_every_strategy_finds_the_same_entries_in_the_same_order(
    conflicted: Tenant, search: str, direction: SortDirection, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = ErrorFilter(search=search)
    with transaction() as session:
        row_by_row = queries.list_provisioning_errors(
            session, conflicted, category="PropertyConflict", search=search, sort_direction=direction, limit=None
        )
        monkeypatch.setattr(error_search, "_WINDOW", 7)  # many small windows, so the reading crosses them
        monkeypatch.setattr(error_search, "_MAX_WINDOWS", float("inf"))  # never hand over to the index
        in_windows = error_search._first_matches_in_order(session, conflicted, wanted, direction, limit=10**6)
        assert in_windows is not None
        by_index = queries.list_provisioning_errors(
            session, conflicted, category="PropertyConflict", search=search, sort_direction=direction, limit=15
        )
    assert _keys(in_windows) == _keys(row_by_row)
    assert _keys(by_index) == _keys(row_by_row)[:15]
    if search != "nothing-like-it":
        assert row_by_row, f"{search!r} should match something"


def test_the_index_form_matches_what_the_row_by_row_form_matches(conflicted: Tenant) -> None:
    with transaction() as session:
        for search in ("person", "shared3@", "_x%"):
            plain = entries_with_holders().where(*ErrorFilter(search=search).conditions(conflicted))
            indexed = entries_with_holders().where(
                *ErrorFilter().conditions(conflicted), error_search._search_by_index(conflicted, search)
            )
            assert sorted(_keys([error_row(r) for r in session.execute(plain)])) == sorted(
                _keys([error_row(r) for r in session.execute(indexed)])
            )
