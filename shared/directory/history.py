"""Writing a conflict's history (`conflict_events`): the apply path's changes, reports, and pruning.

The apply path calls `record_changes` in the transaction that writes the plan, so the history can
never tell another story than the entries and claims. It costs one statement for an export or a
batch wave that opens or ends a conflict, and nothing for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, delete, exists, insert, select, tuple_
from sqlalchemy.orm import Session, aliased

from shared.core.history import ENDS, ConflictChange
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import ConflictEventRow, SentReport, conflict_events, utcnow


def change_rows(
    tenant_id: int, object_pk: int, sequence: int, changes: Sequence[ConflictChange], now: datetime
) -> list[dict[str, Any]]:
    """The rows of one object's changes, made by its export `sequence` at `now`."""
    return [
        {
            "tenant_id": tenant_id,
            "object_pk": object_pk,
            "key": change.key,
            "kind": change.kind,
            "at": now,
            "property_name": change.property_name,
            "property_value": change.property_value,
            "sequence": sequence,
            "holder_object_id": change.holder_object_id,
            "report_id": None,
        }
        for change in changes
    ]


def record_changes(connection: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(insert(conflict_events), rows)


def record_report(
    session: Session,
    tenant_id: int,
    sent_at: datetime,
    recipients: Sequence[str],
    reported: Sequence[Any],
    failures: int,
) -> int:
    """The report that went out, and a `reported` event for each entry it marked (rows of
    object_pk, key, property_name, property_value); returns the report's id."""
    report = SentReport(
        tenant_id=tenant_id,
        sent_at=sent_at,
        recipients=", ".join(recipients),
        conflicts=len(reported),
        failures=failures,
    )
    session.add(report)
    session.flush()
    if reported:
        session.execute(
            insert(conflict_events),
            [
                {
                    "tenant_id": tenant_id,
                    "object_pk": object_pk,
                    "key": key,
                    "kind": "reported",
                    "at": sent_at,
                    "property_name": name,
                    "property_value": value,
                    "sequence": None,
                    "holder_object_id": None,
                    "report_id": report.id,
                }
                for object_pk, key, name, value in reported
            ],
        )
    return report.id


def prune_conflict_history(settings: Settings) -> int:
    """Delete the histories of conflicts that ended more than CONFLICT_HISTORY_RETENTION_DAYS ago
    (the hourly sweep's task calls it once the sweep is through)."""
    cutoff = utcnow() - timedelta(days=settings.conflict_history_retention_days)
    with transaction(settings.database_url) as session:
        return prune_history(session, cutoff)


def prune_history(session: Session, ended_before: datetime) -> int:
    """Delete the histories of conflicts that ended before `ended_before` and did not open again
    since (their last event is a release or a drop); returns the events deleted."""
    last = aliased(ConflictEventRow)
    later = aliased(ConflictEventRow)
    ended = (
        select(last.object_pk, last.key)
        .where(
            last.kind.in_(ENDS),
            last.at < ended_before,
            ~exists().where(
                later.object_pk == last.object_pk,
                later.key == last.key,
                (later.at > last.at) | and_(later.at == last.at, later.id > last.id),
            ),
        )
        .subquery()
    )
    result = session.execute(
        delete(ConflictEventRow).where(
            tuple_(ConflictEventRow.object_pk, ConflictEventRow.key).in_(select(ended.c.object_pk, ended.c.key))
        )
    )
    orphans = delete(SentReport).where(
        SentReport.sent_at < ended_before, ~exists().where(ConflictEventRow.report_id == SentReport.id)
    )
    session.execute(orphans)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
