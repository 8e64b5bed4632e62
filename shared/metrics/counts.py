"""Service-wide counts for `/metrics`, read at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from shared.store.tables import (
    DirectoryObject,
    FailedExport,
    ProvisioningError,
)


@dataclass(frozen=True, slots=True)
class ServiceCounts:
    """Service-wide counts for `/metrics`, read at scrape time."""

    open_quarantines: dict[str, int]  # by property name
    failed_exports: dict[str, int]  # by error code
    live_objects: dict[str, int]  # by object class


def service_counts(session: Session) -> ServiceCounts:
    quarantines = session.execute(
        select(ProvisioningError.property_name, func.count()).group_by(ProvisioningError.property_name)
    )
    failures = session.execute(select(FailedExport.error_code, func.count()).group_by(FailedExport.error_code))
    objects = session.execute(
        select(DirectoryObject.object_class, func.count())
        .where(DirectoryObject.deleted.is_(false()))
        .group_by(DirectoryObject.object_class)
    )
    return ServiceCounts(
        open_quarantines={name: int(n) for name, n in quarantines},
        failed_exports={code: int(n) for code, n in failures},
        live_objects={object_class: int(n) for object_class, n in objects},
    )
