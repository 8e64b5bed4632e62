"""`apply_many`'s bulk part: independent exports of a batch share one statement per step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from shared.core.values import value_key
from shared.exports.applier import ExportApplier
from shared.store.engine import get_engine
from shared.store.tables import Tenant, entries
from tests.conftest import export_line
from tests.workers.helpers import object_view


@contextmanager
def counted_statements(applier: ExportApplier) -> Iterator[list[str]]:
    """Every statement the applier's engine sends while inside."""
    engine = get_engine(applier.settings.database_url)
    sent: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_twenty_new_independent_exports_cost_a_handful_of_statements_not_four_each(
    tenant: Tenant, applier: ExportApplier
) -> None:
    lines = [
        export_line(
            tenant.name, f"n{i}", userPrincipalName=f"n{i}@contoso.com", proxyAddresses=[f"SMTP:p{i}@contoso.com"]
        )
        for i in range(20)
    ]
    with counted_statements(applier) as sent:
        outcomes = applier.apply_many(lines)
    assert [o.status if o else None for o in outcomes] == ["applied"] * 20
    assert len(sent) <= 5, sent  # lock rows, read state, insert objects, claim values (+ entries)
    for i, outcome in enumerate(outcomes):
        view = object_view(tenant.name, f"n{i}")
        assert view is not None and outcome is not None and view.object_id == outcome.object_id
        assert view.upn == f"n{i}@contoso.com" and view.held == {
            value_key(f"n{i}@contoso.com"),
            value_key(f"p{i}@contoso.com"),
        }


def test_a_bulk_update_that_lets_a_value_go_reports_its_waiter_and_a_new_conflict_is_entered(
    tenant: Tenant, applier: ExportApplier
) -> None:
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="x@contoso.com"))
    applier.apply(export_line(tenant.name, "waiter", userPrincipalName="x@contoso.com"))
    applier.apply(export_line(tenant.name, "owner", userPrincipalName="taken@contoso.com"))
    outcomes = applier.apply_many(
        [
            export_line(tenant.name, "holder", sequence=2, userPrincipalName="y@contoso.com"),
            export_line(tenant.name, "newcomer", userPrincipalName="taken@contoso.com"),
        ]
    )
    assert [o.status if o else None for o in outcomes] == ["applied", "applied"]
    assert outcomes[0] is not None and outcomes[0].freed_with_waiters == (value_key("x@contoso.com"),)
    assert outcomes[1] is not None and outcomes[1].quarantined == (value_key("taken@contoso.com"),)
    assert outcomes[1].newly_quarantined == 1
    holder, newcomer, owner = (object_view(tenant.name, a) for a in ("holder", "newcomer", "owner"))
    assert holder is not None and holder.upn == "y@contoso.com" and holder.held == {value_key("y@contoso.com")}
    assert newcomer is not None and owner is not None
    assert [e["conflictingObjectId"] for e in newcomer.entries] == [owner.object_id]
    with get_engine(applier.settings.database_url).connect() as connection:
        classes = connection.scalars(select(entries.c.object_class).where(entries.c.tenant_id == tenant.id)).all()
    assert classes == ["User", "User"]  # the waiter's, entered alone, and the newcomer's, entered in bulk


def test_an_export_wanting_a_value_another_export_of_the_batch_lets_go_sees_it_free(
    tenant: Tenant, applier: ExportApplier
) -> None:
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="x@contoso.com"))
    outcomes = applier.apply_many(
        [
            export_line(tenant.name, "wants", userPrincipalName="x@contoso.com"),
            export_line(tenant.name, "holder", sequence=2, userPrincipalName="y@contoso.com"),
            export_line(tenant.name, "bystander", userPrincipalName="b@contoso.com"),
        ]
    )
    assert [o.status if o else None for o in outcomes] == ["applied"] * 3
    wants, holder = object_view(tenant.name, "wants"), object_view(tenant.name, "holder")
    assert holder is not None and holder.held == {value_key("y@contoso.com")}
    assert wants is not None and wants.upn == "x@contoso.com" and wants.entries == []


def test_a_bulk_delete_lets_its_values_go_and_a_stale_export_is_skipped(tenant: Tenant, applier: ExportApplier) -> None:
    applier.apply(export_line(tenant.name, "gone", userPrincipalName="g@contoso.com"))
    applier.apply(export_line(tenant.name, "stale", sequence=5, userPrincipalName="s@contoso.com"))
    outcomes = applier.apply_many(
        [
            export_line(tenant.name, "gone", sequence=2, operation="delete"),
            export_line(tenant.name, "stale", sequence=4, userPrincipalName="old@contoso.com"),
        ]
    )
    assert [o.status if o else None for o in outcomes] == ["applied", "skipped"]
    gone, stale = object_view(tenant.name, "gone"), object_view(tenant.name, "stale")
    assert gone is not None and gone.deleted and gone.held == set()
    assert stale is not None and stale.upn == "s@contoso.com"


def test_exports_that_want_each_others_values_apply_in_waves_in_message_order(
    tenant: Tenant, applier: ExportApplier
) -> None:
    """Each odd export asks for its even neighbour's UPN: the evens claim in the first wave, the odds
    find them held in the second and are quarantined naming them, in a few statements, not one by one."""
    lines = [
        export_line(
            tenant.name,
            f"w{i}",
            userPrincipalName=f"u{i - i % 2}@contoso.com",
            proxyAddresses=[f"SMTP:w{i}@contoso.com"],
        )
        for i in range(20)
    ]
    lines.append(export_line(tenant.name, "w0", sequence=2, userPrincipalName="u0@contoso.com", displayName="again"))
    with counted_statements(applier) as sent:
        outcomes = applier.apply_many(lines)
    assert [o.status if o else None for o in outcomes] == ["applied"] * 21
    assert len(sent) <= 16, sent  # three waves of lock, read, insert or update, claim; a placeholder each
    for i in range(0, 20, 2):
        holder, waiter = object_view(tenant.name, f"w{i}"), object_view(tenant.name, f"w{i + 1}")
        assert holder is not None and waiter is not None
        assert holder.upn == f"u{i}@contoso.com" and holder.entries == []
        assert waiter.upn != f"u{i}@contoso.com" and waiter.upn is not None and waiter.upn.startswith(f"u{i}+")
        assert [e["conflictingObjectId"] for e in waiter.entries] == [holder.object_id]
    first = object_view(tenant.name, "w0")
    assert first is not None and first.display_name == "again" and first.upn == "u0@contoso.com"
