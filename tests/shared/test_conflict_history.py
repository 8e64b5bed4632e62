"""A conflict's history in the store: opened, reported, released or dropped, by every apply path,
shown by `syncguard object show`, counted day by day, and pruned after its retention."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from redis import Redis
from sqlalchemy import func, select, text, update

from shared.cli import cli
from shared.core.values import value_key
from shared.directory.history import prune_conflict_history
from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.queries.conflict_history import conflict_history, daily_conflict_series, object_history
from shared.reports.sending import send_error_reports
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import ConflictEventRow, DirectoryObject, ProvisioningError, SentReport, Tenant
from tests.conftest import export_line
from tests.services import MailCatcher


def object_pk(tenant: Tenant, anchor: str) -> int:
    with transaction() as session:
        pk = session.scalar(
            select(DirectoryObject.id).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == anchor
            )
        )
    assert pk is not None
    return pk


def kinds(tenant: Tenant, anchor: str) -> list[tuple[str, str]]:
    with transaction() as session:
        return [(e.kind, e.property_value) for e in object_history(session, tenant, anchor)]


def test_a_conflict_is_opened_reported_and_released_to_its_waiter(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, redis_client: Redis
) -> None:
    tenant = make_tenant(technical_contacts=("it@contoso.test",))
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="ann@contoso.com"))
    applier.apply(export_line(tenant.name, "waiter", sequence=3, userPrincipalName="Ann@contoso.com"))
    with MailCatcher() as mail:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=mail.port, smtp_from="reports@syncguard.test")
        send_error_reports(settings, LockManager(redis_client), tenant.name)
    freed = applier.apply(export_line(tenant.name, "holder", sequence=2, userPrincipalName="new@contoso.com"))
    assert freed.freed_with_waiters == (value_key("ann@contoso.com"),)
    assert applier.release(tenant.name, value_key("ann@contoso.com")).status == "released"

    with transaction() as session:
        events = conflict_history(session, tenant, object_pk(tenant, "waiter"), value_key("ann@contoso.com"))
        report = session.scalars(select(SentReport).where(SentReport.tenant_id == tenant.id)).one()
        holder_id = session.scalar(
            select(DirectoryObject.object_id).where(
                DirectoryObject.source_anchor == "holder", DirectoryObject.tenant_id == tenant.id
            )
        )
    assert [e.kind for e in events] == ["opened", "reported", "released"]
    opened, reported, released = events
    assert opened.holder_object_id == holder_id and opened.sequence == 3 and opened.property_name == "UserPrincipalName"
    assert opened.property_value == "Ann@contoso.com"
    assert reported.report_id == report.id and report.conflicts == 1 and report.recipients == "it@contoso.test"
    assert released.sequence == 3 and opened.at <= reported.at <= released.at
    assert kinds(tenant, "holder") == []

    result = CliRunner().invoke(
        cli, ["object", "show", "--tenant", tenant.name, "--source-anchor", "waiter", "--history", "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["conflictHistory"]
    assert [(e["event"], e["propertyValue"]) for e in shown] == [
        ("opened", "Ann@contoso.com"),
        ("reported", "Ann@contoso.com"),
        ("released", "Ann@contoso.com"),
    ]
    assert shown[0]["conflictingObjectId"] == holder_id and shown[1]["reportId"] == report.id
    table = CliRunner().invoke(cli, ["object", "show", "--tenant", tenant.name, "--source-anchor", "waiter"])
    assert table.exit_code == 0 and "released" in table.output and "reported" in table.output


def test_a_waiter_that_stops_asking_or_is_deleted_drops_its_conflicts(tenant: Tenant, applier: ExportApplier) -> None:
    applier.apply(
        export_line(tenant.name, "holder", userPrincipalName="h@contoso.com", proxyAddresses=["SMTP:team@contoso.com"])
    )
    applier.apply(
        export_line(tenant.name, "changer", userPrincipalName="h@contoso.com", proxyAddresses=["SMTP:c@contoso.com"])
    )
    applier.apply(export_line(tenant.name, "leaver", "Group", proxyAddresses=["SMTP:team@contoso.com"]))
    applier.apply(export_line(tenant.name, "changer", sequence=2, userPrincipalName="mine@contoso.com"))
    applier.apply(export_line(tenant.name, "leaver", "Group", sequence=2, operation="delete"))
    assert kinds(tenant, "changer") == [("opened", "h@contoso.com"), ("dropped", "h@contoso.com")]
    assert kinds(tenant, "leaver") == [("opened", "SMTP:team@contoso.com"), ("dropped", "SMTP:team@contoso.com")]


def test_conflicts_opened_in_a_batch_are_written_to_the_history_in_bulk(tenant: Tenant, applier: ExportApplier) -> None:
    lines = [export_line(tenant.name, f"b{i}", userPrincipalName=f"u{i - i % 2}@contoso.com") for i in range(10)]
    outcomes = applier.apply_many(lines)
    assert [o.status if o else None for o in outcomes] == ["applied"] * 10
    for i in range(1, 10, 2):
        assert kinds(tenant, f"b{i}") == [("opened", f"u{i - 1}@contoso.com")]
        assert kinds(tenant, f"b{i - 1}") == []


def test_the_daily_series_counts_open_conflicts_and_releases_from_the_events(
    tenant: Tenant, applier: ExportApplier
) -> None:
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="a@contoso.com"))
    for n in range(3):
        applier.apply(export_line(tenant.name, f"w{n}", userPrincipalName="a@contoso.com"))
    applier.apply(export_line(tenant.name, "w2", sequence=2, userPrincipalName="w2@contoso.com"))  # dropped
    now = datetime.now(UTC)
    with transaction() as session:  # move w0's opening four days back, as if it had waited since
        session.execute(
            update(ConflictEventRow)
            .where(ConflictEventRow.object_pk == object_pk(tenant, "w0"))
            .values(at=now - timedelta(days=4))
        )
    with transaction() as session:
        series = daily_conflict_series(session, tenant, days=7, today=now.date())
        counted = session.execute(
            text(
                "SELECT (at AT TIME ZONE 'UTC')::date AS day, kind, count(*) FROM conflict_events"
                " WHERE tenant_id = :t GROUP BY 1, 2"
            ),
            {"t": tenant.id},
        ).all()
        still_open = session.scalar(
            select(func.count()).select_from(ProvisioningError).where(ProvisioningError.tenant_id == tenant.id)
        )
    assert [d.day for d in series] == [now.date() - timedelta(days=6 - i) for i in range(7)]
    by = {(day, kind): n for day, kind, n in counted}
    for day in series:
        assert (day.opened, day.released, day.dropped) == (
            by.get((day.day, "opened"), 0),
            by.get((day.day, "released"), 0),
            by.get((day.day, "dropped"), 0),
        )
    assert [d.open_at_end for d in series] == [0, 0, 1, 1, 1, 1, 2]
    assert series[-1].open_at_end == still_open


def test_pruning_drops_whole_histories_of_conflicts_that_ended_before_the_retention(
    tenant: Tenant, applier: ExportApplier
) -> None:
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="a@contoso.com"))
    applier.apply(export_line(tenant.name, "old", userPrincipalName="a@contoso.com"))
    applier.apply(export_line(tenant.name, "old", sequence=2, userPrincipalName="o@contoso.com"))
    applier.apply(export_line(tenant.name, "recent", userPrincipalName="a@contoso.com"))
    applier.apply(export_line(tenant.name, "recent", sequence=2, userPrincipalName="r@contoso.com"))
    applier.apply(export_line(tenant.name, "waiting", userPrincipalName="a@contoso.com"))
    with transaction() as session:
        session.execute(
            update(ConflictEventRow)
            .where(ConflictEventRow.object_pk.in_([object_pk(tenant, "old"), object_pk(tenant, "waiting")]))
            .values(at=datetime.now(UTC) - timedelta(days=120))
        )
    assert prune_conflict_history(Settings(conflict_history_retention_days=90)) >= 2
    assert kinds(tenant, "old") == []
    assert [k for k, _ in kinds(tenant, "recent")] == ["opened", "dropped"]
    assert [k for k, _ in kinds(tenant, "waiting")] == ["opened"], "an open conflict keeps its history"
