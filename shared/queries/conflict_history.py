"""A conflict's history as the report and the CLI show it, and the overview's day-by-day series.

The series is counted from the events alone: a conflict is open at the end of a day when it was
opened by then and had not ended by then. Pruning removes only whole histories of conflicts that
ended more than CONFLICT_HISTORY_RETENTION_DAYS ago (at least the chart's 30 days), so no day of
the chart loses an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, case, cast, func, select
from sqlalchemy.orm import Session

from shared.core.history import ENDS, EventKind
from shared.store.tables import ConflictEventRow, DirectoryObject, Tenant


@dataclass(frozen=True, slots=True)
class ConflictEvent:
    kind: EventKind
    at: datetime
    key: str
    property_name: str
    property_value: str
    sequence: int | None  # opened, released, dropped: the waiter's export sequence that did it
    holder_object_id: str | None  # opened: who held the value then
    report_id: int | None  # reported: the sent report it went out in

    def as_json(self) -> dict[str, object]:
        return {
            "event": self.kind,
            "at": self.at.isoformat(),
            "propertyName": self.property_name,
            "propertyValue": self.property_value,
            "sequence": self.sequence,
            "conflictingObjectId": self.holder_object_id,
            "reportId": self.report_id,
        }


@dataclass(frozen=True, slots=True)
class ConflictDay:
    day: date
    open_at_end: int  # conflicts open at the end of the day (UTC)
    opened: int
    released: int
    dropped: int


def conflict_history(session: Session, tenant: Tenant, object_pk: int, key: str | None = None) -> list[ConflictEvent]:
    """Oldest first; one conflict (`key`) or all of the object's."""
    statement = select(ConflictEventRow).where(
        ConflictEventRow.tenant_id == tenant.id, ConflictEventRow.object_pk == object_pk
    )
    if key is not None:
        statement = statement.where(ConflictEventRow.key == key)
    rows = session.scalars(statement.order_by(ConflictEventRow.at, ConflictEventRow.id))
    return [
        ConflictEvent(
            row.kind,  # type: ignore[arg-type]  # the writers write only EventKind values
            _utc(row.at),
            row.key,
            row.property_name,
            row.property_value,
            row.sequence,
            row.holder_object_id,
            row.report_id,
        )
        for row in rows
    ]


def object_history(session: Session, tenant: Tenant, source_anchor: str) -> list[ConflictEvent]:
    """Every conflict event of the object with this anchor (its tombstone's too), oldest first."""
    object_pk = session.scalar(
        select(DirectoryObject.id).where(
            DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == source_anchor
        )
    )
    return [] if object_pk is None else conflict_history(session, tenant, object_pk)


def daily_conflict_series(
    session: Session, tenant: Tenant, days: int = 30, today: date | None = None
) -> list[ConflictDay]:
    """The last `days` days ending with `today` (UTC), oldest first, every day present (zeros too)."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(today + timedelta(days=1), time(), UTC)
    events = ConflictEventRow
    is_open = case((events.kind == "opened", 1), (events.kind.in_(ENDS), -1), else_=0)
    before = session.scalar(
        select(func.coalesce(func.sum(is_open), 0)).where(events.tenant_id == tenant.id, events.at < start)
    )
    day = _utc_day(session, events.at)
    counted = session.execute(
        select(day, events.kind, func.count())
        .where(events.tenant_id == tenant.id, events.at >= start, events.at < end, events.kind != "reported")
        .group_by(day, events.kind)
    )
    by_day: dict[tuple[date, str], int] = {}
    for moment, kind, count in counted:
        by_day[(_as_date(moment), kind)] = int(count)
    series: list[ConflictDay] = []
    open_now = int(before or 0)
    for offset in range(days):
        current = first + timedelta(days=offset)
        opened, released, dropped = (by_day.get((current, kind), 0) for kind in ("opened", "released", "dropped"))
        open_now += opened - released - dropped
        series.append(ConflictDay(current, open_now, opened, released, dropped))
    return series


def _utc_day(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, whatever the session's time zone."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    day: ColumnElement[Any] = func.date(column)
    return day


def _as_date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
