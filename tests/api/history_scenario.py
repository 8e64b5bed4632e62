"""A tenant with a month of conflict history: today's through the real apply path, older days in SQL.

Today's conflicts, releases and drops are written by ExportApplier (the code a worker runs) and its
release, so their events are the ones production writes. The apply path cannot write yesterday, so
the older days are rows inserted into conflict_events with SQL: conflicts that opened and ended in
the window, one that opened before it, one that ended before it, one that opened twice, and events
on the stroke of midnight. Every one of those ended before today, so the conflicts open at the end
of today are exactly the provisioning-error entries on file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import insert, select, text

from shared.core.values import value_key
from shared.exports.applier import ExportApplier
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, conflict_events
from tests.api.conftest import TenantAccess
from tests.conftest import export_line

# (conflict, [(kind, days before today, time of day)]) for the rows written with SQL
PAST = {
    "before-window": [("opened", 40, time(9)), ("released", 25, time(10))],
    "all-before": [("opened", 35, time(8)), ("released", 33, time(8))],
    "first-day": [("opened", 29, time(0)), ("reported", 28, time(7)), ("dropped", 2, time(23, 59, 59))],
    "midnight": [("opened", 20, time(12)), ("released", 12, time(0))],
    "reported": [("opened", 15, time(6)), ("reported", 14, time(6)), ("released", 3, time(15))],
    "twice": [("opened", 10, time(1)), ("released", 8, time(1)), ("opened", 6, time(2)), ("released", 5, time(2))],
    "pair-a": [("opened", 9, time(11)), ("released", 7, time(13))],
    "pair-b": [("opened", 9, time(18)), ("released", 7, time(22))],
}


@dataclass(frozen=True)
class History:
    access: TenantAccess
    today: date

    @property
    def name(self) -> str:
        return self.access.name


def apply_all(applier: ExportApplier, lines: list[str]) -> None:
    """Apply as a worker would: the batch, then alone whatever the batch handed back."""
    for line, outcome in zip(lines, applier.apply_many(lines), strict=True):
        if outcome is None:
            outcome = applier.apply(line)
        assert outcome.status in ("applied", "failed"), outcome


def build_history(applier: ExportApplier, access: TenantAccess) -> History:
    name = access.name
    apply_all(
        applier,
        [
            export_line(
                name,
                "alice",
                displayName="Alice Wong",
                userPrincipalName="alice@contoso.com",
                proxyAddresses=["SMTP:alice@contoso.com"],
            ),
            export_line(name, "sales", "Group", displayName="Sales", proxyAddresses=["SMTP:sales@contoso.com"]),
            export_line(name, "carl", "Contact", displayName="Carl Extern", proxyAddresses=["SMTP:carl@contoso.com"]),
        ],
    )
    apply_all(
        applier,
        [
            export_line(name, "bob", displayName="Alice Walker", userPrincipalName="Alice@contoso.com"),
            export_line(
                name,
                "team",
                "Group",
                displayName="Team",
                proxyAddresses=["SMTP:team@contoso.com", "smtp:alice@contoso.com"],
            ),
            export_line(
                name, "salesfwd", "Contact", displayName="Sales Forward", proxyAddresses=["SMTP:sales@contoso.com"]
            ),
            export_line(name, "dan", displayName="Dan Carlsen", userPrincipalName="carl@contoso.com"),
            export_line(
                name,
                "erin",
                displayName="Erin Sale",
                userPrincipalName="erin@contoso.com",
                proxyAddresses=["SMTP:erin@contoso.com", "smtp:sales@contoso.com"],
            ),
        ],
    )
    # Carl lets go of his address and the release gives it to Dan; Erin stops asking for Sales' address.
    apply_all(applier, [export_line(name, "carl", "Contact", sequence=2, displayName="Carl Extern", proxyAddresses=[])])
    assert applier.release(name, value_key("carl@contoso.com")).status == "released"
    apply_all(
        applier,
        [
            export_line(
                name,
                "erin",
                sequence=2,
                displayName="Erin Sale",
                userPrincipalName="erin@contoso.com",
                proxyAddresses=["SMTP:erin@contoso.com"],
            )
        ],
    )
    # Failed exports of two codes: a group with a UPN (twice, two objects), a contact with too many addresses.
    apply_all(
        applier,
        [
            export_line(name, "broken-group", "Group", displayName="Broken", userPrincipalName="g@contoso.com"),
            export_line(name, "broken-too", "Group", displayName="Broken too", userPrincipalName="h@contoso.com"),
            export_line(
                name,
                "huge",
                "Contact",
                displayName="Huge",
                proxyAddresses=[f"smtp:a{i}@contoso.com" for i in range(applier.settings.max_proxy_addresses + 1)],
            ),
        ],
    )
    today = datetime.now(UTC).date()
    insert_past_events(access, today)
    return History(access, today)


def insert_past_events(access: TenantAccess, today: date) -> None:
    with transaction() as session:
        bob = session.scalar(
            select(DirectoryObject.id).where(
                DirectoryObject.tenant_id == access.tenant.id, DirectoryObject.source_anchor == "bob"
            )
        )
        rows = [
            {
                "tenant_id": access.tenant.id,
                "object_pk": bob,
                "key": f"{conflict}@old.contoso.com",
                "kind": kind,
                "at": datetime.combine(today - timedelta(days=ago), at, UTC),
                "property_name": "ProxyAddresses",
                "property_value": f"smtp:{conflict}@old.contoso.com",
                "sequence": None,
                "holder_object_id": None,
                "report_id": None,
            }
            for conflict, events in PAST.items()
            for kind, ago, at in events
        ]
        session.execute(insert(conflict_events), rows)


@dataclass(frozen=True)
class CountedDay:
    day: date
    open_at_end: int
    released: int


# Counted another way than the report's query: a conflict (object, value) is open at the end of a day
# when the last of its opened/released/dropped events up to then is an `opened`.
DAYS_COUNTED_IN_SQL = text(
    """
    SELECT d.day::date AS day,
        (SELECT count(*) FROM (
            SELECT DISTINCT ON (e.object_pk, e.key) e.kind FROM conflict_events e
            WHERE e.tenant_id = :tenant AND e.kind <> 'reported'
              AND e.at < ((d.day::date + 1)::timestamp AT TIME ZONE 'UTC')
            ORDER BY e.object_pk, e.key, e.at DESC, e.id DESC) last
         WHERE last.kind = 'opened') AS open_at_end,
        (SELECT count(*) FROM conflict_events e
         WHERE e.tenant_id = :tenant AND e.kind = 'released'
           AND (e.at AT TIME ZONE 'UTC')::date = d.day::date) AS released
    FROM generate_series(CAST(:first AS date), CAST(:today AS date), interval '1 day') AS d(day)
    ORDER BY 1
    """
)


def days_counted_in_sql(history: History, days: int = 30) -> list[CountedDay]:
    with transaction() as session:
        rows = session.execute(
            DAYS_COUNTED_IN_SQL,
            {
                "tenant": history.access.tenant.id,
                "first": history.today - timedelta(days=days - 1),
                "today": history.today,
            },
        )
        return [CountedDay(day, int(open_at_end), int(released)) for day, open_at_end, released in rows]


def open_entries_in_sql(history: History) -> dict[tuple[str, str], int]:
    with transaction() as session:
        rows = session.execute(
            text(
                "SELECT o.object_class, e.property_name, count(*) FROM provisioning_errors e"
                " JOIN directory_objects o ON o.id = e.object_pk WHERE e.tenant_id = :tenant GROUP BY 1, 2"
            ),
            {"tenant": history.access.tenant.id},
        )
        return {(object_class, prop): int(n) for object_class, prop, n in rows}


def failures_by_code_in_sql(history: History) -> dict[str, int]:
    with transaction() as session:
        rows = session.execute(
            text("SELECT error_code, count(*) FROM failed_exports WHERE tenant = :name GROUP BY 1"),
            {"name": history.name},
        )
        return {code: int(n) for code, n in rows}
