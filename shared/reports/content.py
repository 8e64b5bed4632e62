"""The tenant's error report: new quarantines once, failed exports every time until fixed.

Gathering, rendering and marking are separate so the sender can mark entries reported only after
the mail server accepted the message: a crash in between re-sends once, never loses an entry.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session, aliased

from shared.queries.failures import FailureRow, list_failures
from shared.store.tables import (
    ClaimedValue,
    DirectoryObject,
    ProvisioningError,
    Tenant,
)


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
    tenant: str
    recipients: tuple[str, ...]
    conflicts: tuple[ConflictLine, ...]
    failures: tuple[FailureRow, ...]

    @property
    def is_empty(self) -> bool:
        return not self.conflicts and not self.failures

    @property
    def entry_ids(self) -> list[int]:
        return [c.entry_id for c in self.conflicts]


def gather(session: Session, tenant: Tenant, limit: int = 5_000) -> TenantReport:
    """Quarantines never reported before (oldest first) and every failed export still failing."""
    waiter = aliased(DirectoryObject)
    holder = aliased(DirectoryObject)
    holder_now = aliased(DirectoryObject)
    rows = session.execute(
        select(ProvisioningError, waiter, holder_now.object_id, holder_now.display_name, holder.display_name)
        .join(waiter, waiter.id == ProvisioningError.object_pk)
        .outerjoin(
            ClaimedValue,
            and_(ClaimedValue.tenant_id == ProvisioningError.tenant_id, ClaimedValue.key == ProvisioningError.key),
        )
        .outerjoin(holder_now, holder_now.id == ClaimedValue.object_pk)
        .outerjoin(holder, holder.object_id == ProvisioningError.conflicting_object_id)
        .where(ProvisioningError.tenant_id == tenant.id, ProvisioningError.reported_at.is_(None))
        .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
        .limit(limit)
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
    failures = tuple(list_failures(session, tenant))
    return TenantReport(tenant.name, tuple(tenant.technical_contacts or ()), conflicts, failures)


def mark_reported(session: Session, entry_ids: list[int], when: datetime) -> int:
    """Only the entries that went out are marked; ones created meanwhile wait for the next report."""
    if not entry_ids:
        return 0
    result = session.execute(
        update(ProvisioningError)
        .where(ProvisioningError.id.in_(entry_ids), ProvisioningError.reported_at.is_(None))
        .values(reported_at=when)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _holder(line: ConflictLine) -> str:
    return f"{line.holder_display_name or '(no display name)'} ({line.holder_object_id})"


def render_text(report: TenantReport) -> str:
    out = [f"Directory synchronization error report for tenant {report.tenant}", ""]
    if report.conflicts:
        out += [
            f"{len(report.conflicts)} new attribute conflict(s) were quarantined. The export succeeded; "
            "each object below waits for the value and receives it automatically once the holder lets go.",
            "",
        ]
        for c in report.conflicts:
            out += [
                f"- {c.object_type} {c.display_name or '(no display name)'} [{c.source_anchor}]",
                f"    {c.property_name}: {c.value}",
                f"    held by: {_holder(c)}",
                f"    since: {_when(c.occurred)}",
            ]
        out.append("")
    if report.failures:
        out += [f"{len(report.failures)} export(s) are failing and are retried on every sync cycle until fixed:", ""]
        for f in report.failures:
            out += [
                f"- {f.object_type or 'Unknown'} [{f.source_anchor or 'no source anchor'}] {f.error_code}",
                f"    {f.message}",
                f"    failing since {_when(f.first_failed)}, {f.attempts} attempt(s), last at {_when(f.last_failed)}",
            ]
        out.append("")
    out.append("To resolve a conflict, change the value on premises so that only one object asks for it.")
    return "\n".join(out)


def render_html(report: TenantReport) -> str:
    e = html.escape
    parts = [
        '<!doctype html><html><body style="font-family: sans-serif">',
        f"<h2>Directory synchronization error report for tenant {e(report.tenant)}</h2>",
    ]
    if report.conflicts:
        parts.append(f"<h3>{len(report.conflicts)} new attribute conflict(s) quarantined</h3>")
        parts.append(
            '<table border="1" cellpadding="4" cellspacing="0"><tr><th>Object type</th>'
            "<th>Display name</th><th>Property</th><th>Value</th><th>Held by</th><th>Since</th></tr>"
        )
        for c in report.conflicts:
            parts.append(
                f"<tr><td>{e(c.object_type)}</td><td>{e(c.display_name or '')}</td><td>{e(c.property_name)}</td>"
                f"<td>{e(c.value)}</td><td>{e(c.holder_display_name or '')}<br><small>{e(c.holder_object_id)}</small></td>"
                f"<td>{e(_when(c.occurred))}</td></tr>"
            )
        parts.append("</table>")
    if report.failures:
        parts.append(f"<h3>{len(report.failures)} failing export(s)</h3>")
        parts.append(
            '<table border="1" cellpadding="4" cellspacing="0"><tr><th>Object type</th>'
            "<th>Source anchor</th><th>Error</th><th>Message</th><th>Attempts</th><th>Failing since</th></tr>"
        )
        for f in report.failures:
            parts.append(
                f"<tr><td>{e(f.object_type or '')}</td><td>{e(f.source_anchor or '')}</td><td>{e(f.error_code)}</td>"
                f"<td>{e(f.message)}</td><td>{f.attempts}</td><td>{e(_when(f.first_failed))}</td></tr>"
            )
        parts.append("</table>")
    parts.append("<p>To resolve a conflict, change the value on premises so that only one object asks for it.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_email(report: TenantReport, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = (
        f"[syncguard] {report.tenant}: {len(report.conflicts)} new conflict(s), {len(report.failures)} failing export(s)"
    )
    message["From"] = sender
    message["To"] = ", ".join(report.recipients)
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    return message
