"""The tenant's error report: new quarantines once, failed exports every time until fixed.

Gathering, rendering and marking are separate so the sender can mark entries reported only after
the mail server accepted the message: a crash in between re-sends once, never loses an entry.
A report holds at most REPORT_MAX_ENTRIES entries of each kind, and the totals of all of them, so
neither the email nor the memory that builds it grows with the tenant's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, aliased

from shared.directory.history import record_report
from shared.queries.failures import FailureRow
from shared.store.tables import (
    ClaimedValue,
    DirectoryObject,
    FailedExport,
    ProvisioningError,
    Tenant,
)

MESSAGE_CHARS = 500


@dataclass(frozen=True, slots=True)
class ConflictLine:
    entry_id: int
    object_type: str
    display_name: str | None
    source_anchor: str
    property_name: str
    value: str
    holder_object_id: str
    holder_display_name: str | None
    occurred: datetime


@dataclass(frozen=True, slots=True)
class TenantReport:
    """The entries one email lists, and the totals of everything there is to say."""

    tenant: str
    recipients: tuple[str, ...]
    conflicts: tuple[ConflictLine, ...]
    failures: tuple[FailureRow, ...]
    conflicts_by_property: tuple[tuple[str, int], ...] = ()
    failures_by_code: tuple[tuple[str, int], ...] = ()
    web_report: str | None = None

    @property
    def conflicts_total(self) -> int:
        return sum(n for _, n in self.conflicts_by_property)

    @property
    def failures_total(self) -> int:
        return sum(n for _, n in self.failures_by_code)

    @property
    def is_empty(self) -> bool:
        return self.conflicts_total == 0 and self.failures_total == 0

    @property
    def entry_ids(self) -> list[int]:
        return [c.entry_id for c in self.conflicts]

    def first(self, conflicts: int, failures: int) -> TenantReport:
        """The same totals with fewer entries listed: the rest wait for the next email."""
        return replace(self, conflicts=self.conflicts[:conflicts], failures=self.failures[:failures])


def web_report_address(base_url: str | None, tenant: str) -> str | None:
    """The tenant's page of the web report (`/report/{tenant}` on the HTTP service), when its address is known."""
    return f"{base_url}/report/{quote(tenant, safe='')}" if base_url else None


def gather(session: Session, tenant: Tenant, max_entries: int = 500, base_url: str | None = None) -> TenantReport:
    """The oldest unreported quarantines, the latest failed exports (each at most `max_entries`), all counted."""
    waiter = aliased(DirectoryObject)
    holder = aliased(DirectoryObject)
    holder_now = aliased(DirectoryObject)
    unreported = and_(ProvisioningError.tenant_id == tenant.id, ProvisioningError.reported_at.is_(None))
    rows = session.execute(
        select(ProvisioningError, waiter, holder_now.object_id, holder_now.display_name, holder.display_name)
        .join(waiter, waiter.id == ProvisioningError.object_pk)
        .outerjoin(
            ClaimedValue,
            and_(ClaimedValue.tenant_id == ProvisioningError.tenant_id, ClaimedValue.key == ProvisioningError.key),
        )
        .outerjoin(holder_now, holder_now.id == ClaimedValue.object_pk)
        .outerjoin(holder, holder.object_id == ProvisioningError.conflicting_object_id)
        .where(unreported)
        .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
        .limit(max_entries)
    ).all()
    conflicts = tuple(
        ConflictLine(
            entry_id=entry.id,
            object_type=obj.object_class,
            display_name=obj.display_name,
            source_anchor=obj.source_anchor,
            property_name=entry.property_name,
            value=entry.property_value,
            holder_object_id=holder_id or entry.conflicting_object_id,
            holder_display_name=holder_name if holder_id else stored_holder_name,
            occurred=entry.occurred_at,
        )
        for entry, obj, holder_id, holder_name, stored_holder_name in rows
    )
    by_property = session.execute(
        select(ProvisioningError.property_name, func.count())
        .where(unreported)
        .group_by(ProvisioningError.property_name)
        .order_by(func.count().desc(), ProvisioningError.property_name)
    ).all()
    by_code = session.execute(
        select(FailedExport.error_code, func.count())
        .where(FailedExport.tenant == tenant.name)
        .group_by(FailedExport.error_code)
        .order_by(func.count().desc(), FailedExport.error_code)
    ).all()
    return TenantReport(
        tenant=tenant.name,
        recipients=tuple(tenant.technical_contacts or ()),
        conflicts=conflicts,
        failures=_latest_failures(session, tenant, max_entries),
        conflicts_by_property=tuple((str(name), int(n)) for name, n in by_property),
        failures_by_code=tuple((str(code), int(n)) for code, n in by_code),
        web_report=web_report_address(base_url, tenant.name),
    )


def _latest_failures(session: Session, tenant: Tenant, limit: int) -> tuple[FailureRow, ...]:
    """`list_failures`' order with a limit, so 300,000 failures never come into memory for one email.

    The message is cut at MESSAGE_CHARS (the web report shows it whole) and the raw line is not read:
    either can be as long as a request body.
    """
    rows = session.execute(
        select(
            FailedExport.source_anchor,
            FailedExport.object_class,
            FailedExport.error_code,
            func.substr(FailedExport.message, 1, MESSAGE_CHARS + 1),
            FailedExport.first_failed,
            FailedExport.last_failed,
            FailedExport.attempts,
        )
        .where(FailedExport.tenant == tenant.name)
        .order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
        .limit(limit)
    )
    return tuple(
        FailureRow(
            source_anchor=anchor,
            object_type=object_class,
            error_code=code,
            message=message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + "…",
            first_failed=first,
            last_failed=last,
            attempts=attempts,
        )
        for anchor, object_class, code, message, first, last, attempts in rows
    )


def mark_reported(session: Session, tenant_id: int, shown: TenantReport, when: datetime) -> int:
    """Only the entries that went out are marked; ones created meanwhile wait for the next report.
    The report is kept with a `reported` event in the history of each conflict it marked."""
    marked: list[Any] = []
    if shown.entry_ids:
        marked = list(
            session.execute(
                update(ProvisioningError)
                .where(ProvisioningError.id.in_(shown.entry_ids), ProvisioningError.reported_at.is_(None))
                .values(reported_at=when)
                .returning(
                    ProvisioningError.object_pk,
                    ProvisioningError.key,
                    ProvisioningError.property_name,
                    ProvisioningError.property_value,
                )
            )
        )
    record_report(session, tenant_id, when, shown.recipients, marked, len(shown.failures))
    return len(marked)
