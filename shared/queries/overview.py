"""The figures of the web report's overview: open conflicts by class and property, failures by code,
the last error report.

Each is one grouped count, so the overview costs a few index scans whatever the tenant's size (the
conflicts' count reads the (tenant, class, object) index of provisioning_errors alone, migration 0006).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.store.tables import FailedExport, ProvisioningError, SentReport, Tenant


@dataclass(frozen=True, slots=True)
class ConflictCounts:
    """Open conflicts (one per waiting object and value) by (object class, property name), and totals."""

    cells: dict[tuple[str, str], int]

    def cell(self, object_type: str, property_name: str) -> int:
        return self.cells.get((object_type, property_name), 0)

    def of_type(self, object_type: str) -> int:
        return sum(n for (cls, _), n in self.cells.items() if cls == object_type)

    def of_property(self, property_name: str) -> int:
        return sum(n for (_, name), n in self.cells.items() if name == property_name)

    @property
    def total(self) -> int:
        return sum(self.cells.values())


def count_conflicts_by_type_and_property(session: Session, tenant: Tenant) -> ConflictCounts:
    rows = session.execute(
        select(ProvisioningError.object_class, ProvisioningError.property_name, func.count())
        .where(ProvisioningError.tenant_id == tenant.id)
        .group_by(ProvisioningError.object_class, ProvisioningError.property_name)
    )
    return ConflictCounts({(object_class, property_name): int(count) for object_class, property_name, count in rows})


def count_failures_by_code(session: Session, tenant: Tenant) -> list[tuple[str, int]]:
    """The tenant's failed exports by error code, the most frequent first."""
    count = func.count().label("n")
    rows = session.execute(
        select(FailedExport.error_code, count)
        .where(FailedExport.tenant == tenant.name)
        .group_by(FailedExport.error_code)
        .order_by(count.desc(), FailedExport.error_code)
    )
    return [(code, int(n)) for code, n in rows]


def last_sent_report(session: Session, tenant: Tenant) -> SentReport | None:
    """The tenant's newest error report that went out (one with nothing new to say sends no email)."""
    return session.scalars(
        select(SentReport)
        .where(SentReport.tenant_id == tenant.id)
        .order_by(SentReport.sent_at.desc(), SentReport.id.desc())
        .limit(1)
    ).first()
