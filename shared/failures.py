"""Failed exports: kept per object until a later export of it succeeds, never lost."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.models import FailedExport, utcnow
from shared.schemas import ExportRejected


def _storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; keep the evidence visible instead of losing the row."""
    return None if text is None else text.replace("\x00", "\\u0000")


def record_failure(session: Session, rejected: ExportRejected) -> FailedExport:
    """File the failure against its object when it names one; count repeats, keep the latest error."""
    now = utcnow()
    existing = None
    if rejected.tenant and rejected.source_anchor:
        existing = session.scalars(
            select(FailedExport)
            .where(FailedExport.tenant == rejected.tenant, FailedExport.source_anchor == rejected.source_anchor)
            .limit(1)
        ).first()
    if existing is None:
        existing = FailedExport(
            tenant=rejected.tenant,
            source_anchor=rejected.source_anchor,
            first_failed=now,
            attempts=0,
        )
        session.add(existing)
    existing.object_class = rejected.object_class
    existing.error_code = rejected.code.value
    existing.message = _storable(rejected.message) or ""
    existing.raw = _storable(rejected.raw)
    existing.last_failed = now
    existing.attempts += 1
    session.flush()
    return existing


def clear_failures(session: Session, tenant: str, source_anchor: str) -> None:
    """A successful export of the object ends its failure: it leaves the report."""
    session.execute(
        delete(FailedExport).where(FailedExport.tenant == tenant, FailedExport.source_anchor == source_anchor)
    )
