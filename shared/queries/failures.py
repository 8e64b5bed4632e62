"""Failed exports as the command line and the API list them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.core.timestamps import iso_utc
from shared.store.tables import (
    FailedExport,
    Tenant,
)


@dataclass(frozen=True, slots=True)
class FailureRow:
    source_anchor: str | None
    object_type: str | None
    error_code: str
    message: str
    first_failed: datetime
    last_failed: datetime
    attempts: int

    def as_json(self) -> dict[str, Any]:
        return {
            "sourceAnchor": self.source_anchor,
            "objectType": self.object_type,
            "errorCode": self.error_code,
            "message": self.message,
            "firstFailed": iso_utc(self.first_failed),
            "lastFailed": iso_utc(self.last_failed),
            "attempts": self.attempts,
        }


def list_failures(session: Session, tenant: Tenant) -> list[FailureRow]:
    """The tenant's failed exports, the most recent failure first."""
    rows = session.scalars(
        select(FailedExport)
        .where(FailedExport.tenant == tenant.name)
        .order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
    )
    return [
        FailureRow(
            source_anchor=f.source_anchor,
            object_type=f.object_class,
            error_code=f.error_code,
            message=f.message,
            first_failed=f.first_failed,
            last_failed=f.last_failed,
            attempts=f.attempts,
        )
        for f in rows
    ]


def count_failures(session: Session, tenant: Tenant) -> int:
    return int(session.scalar(select(func.count()).where(FailedExport.tenant == tenant.name)) or 0)
