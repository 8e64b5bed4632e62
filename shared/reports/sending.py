"""`send_error_reports`: one email per tenant with something new to say, each quarantine once.

Order matters: gather, send, then mark what was sent. A crash after sending and before marking
re-sends those entries once on the next run; nothing is ever marked without being sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from shared.locks.manager import LockManager, LocksBusy
from shared.reports.content import gather, mark_reported, render_email
from shared.reports.mailer import deliver
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import Tenant, utcnow
from shared.tenants.registry import require

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    tenant: str
    conflicts: int
    failures: int
    delivered_to: str | None  # None: nothing new, no email

    def describe(self) -> str:
        if self.delivered_to is None:
            return f"{self.tenant}: nothing new to report"
        return f"{self.tenant}: reported {self.conflicts} new conflict(s) and {self.failures} failing export(s) via {self.delivered_to}"


def report_lock_key(tenant: str) -> str:
    return f"sg:{{{tenant}}}:report"


def send_error_reports(settings: Settings, locks: LockManager, tenant: str | None = None) -> list[ReportOutcome]:
    with transaction() as session:
        names = (
            [require(session, tenant).name]
            if tenant
            else list(session.scalars(select(Tenant.name).order_by(Tenant.name)))
        )
    return [outcome for name in names if (outcome := _report_one(name, settings, locks)) is not None]


def _report_one(name: str, settings: Settings, locks: LockManager) -> ReportOutcome | None:
    key = [report_lock_key(name)]
    try:
        token = locks.try_acquire(key)
    except LocksBusy:
        log.info("another process is sending the report for %s; skipping it here", name)
        return None
    try:
        with transaction() as session:
            tenant = require(session, name)
            report = gather(session, tenant)
        if report.is_empty:
            return ReportOutcome(name, 0, 0, None)
        where = deliver(render_email(report, settings.smtp_from), settings)
        with transaction() as session:
            mark_reported(session, report.entry_ids, utcnow())
        return ReportOutcome(name, len(report.conflicts), len(report.failures), where)
    finally:
        locks.release(key, token)
