"""`send_error_reports`: one email per tenant with something new to say, each quarantine once.

Order matters: gather, send, then mark what was sent. A crash after sending and before marking
re-sends those entries once on the next run; nothing is ever marked without being sent. A relay
that refuses one tenant's report does not hold back the others; a relay that cannot be used at all
(connection, TLS, login) stops the run, since every tenant after would fail the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select

from shared.locks.manager import LockManager, LocksBusy
from shared.reports.content import gather, mark_reported
from shared.reports.mailer import MailNotSent, MessageRefused, deliver
from shared.reports.rendering import fit_email
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import Tenant, utcnow
from shared.tenants.registry import require

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    tenant: str
    conflicts: int  # quarantines this email listed, now marked reported
    failures: int
    delivered_to: str | None  # None: nothing new, no email
    conflicts_waiting: int = 0  # unreported quarantines past this email's cap: they lead the next one

    def describe(self) -> str:
        if self.delivered_to is None:
            return f"{self.tenant}: nothing new to report"
        waiting = f" ({self.conflicts_waiting} more wait for the next report)" if self.conflicts_waiting else ""
        return (
            f"{self.tenant}: reported {self.conflicts} new conflict(s){waiting} and {self.failures} "
            f"failing export(s) via {self.delivered_to}"
        )


class ReportsNotSent(Exception):
    """Some reports did not go out: nothing of theirs is marked, so the next run sends them."""

    def __init__(self, sent: list[ReportOutcome], reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.sent = sent
        self.reasons = reasons

    def __reduce__(self) -> tuple[type[ReportsNotSent], tuple[list[ReportOutcome], list[str]]]:
        """A worker's pool pickles a task's exception back to its parent process."""
        return (ReportsNotSent, (self.sent, self.reasons))


def report_lock_key(tenant: str) -> str:
    return f"sg:{{{tenant}}}:report"


def send_error_reports(settings: Settings, locks: LockManager, tenant: str | None = None) -> list[ReportOutcome]:
    """Every tenant's report (or one tenant's); raises `ReportsNotSent` after the others if any failed."""
    with transaction() as session:
        names = (
            [require(session, tenant).name]
            if tenant
            else list(session.scalars(select(Tenant.name).order_by(Tenant.name)))
        )
    sent: list[ReportOutcome] = []
    reasons: list[str] = []
    for index, name in enumerate(names):
        try:
            outcome = _report_one(name, settings, locks)
        except MessageRefused as exc:
            log.error("the report for %s was not sent: %s", name, exc)
            reasons.append(f"the report for {name} was not sent: {exc}")
            continue
        except MailNotSent as exc:
            untried = len(names) - index - 1
            reasons.append(
                f"the report for {name} was not sent: {exc}"
                + (f" ({untried} other tenant(s) not tried)" if untried else "")
            )
            raise ReportsNotSent(sent, reasons) from exc
        if outcome is not None:
            sent.append(outcome)
    if reasons:
        raise ReportsNotSent(sent, reasons)
    return sent


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
            tenant_id = tenant.id
            report = gather(session, tenant, settings.report_max_entries, settings.report_base_url)
        if report.is_empty:
            return ReportOutcome(name, 0, 0, None)
        message, shown = fit_email(report, settings.smtp_from, settings.report_max_bytes)
        where = deliver(message, settings)
        with transaction() as session:
            mark_reported(session, tenant_id, shown, utcnow())
        return ReportOutcome(
            name, len(shown.conflicts), report.failures_total, where, report.conflicts_total - len(shown.conflicts)
        )
    finally:
        locks.release(key, token)
