"""One object as the cloud sees it, and the tenant's objects with their error counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from shared.queries.provisioning_errors import ProvisioningErrorRow, entries_with_holders, error_row
from shared.store.tables import (
    DirectoryObject,
    ProvisioningError,
    Tenant,
)


@dataclass(frozen=True, slots=True)
class ObjectDetail:
    """An object's effective (cloud) state with its open provisioning errors."""

    object_id: str
    source_anchor: str
    object_type: str
    display_name: str | None
    user_principal_name: str | None
    proxy_addresses: tuple[str, ...]
    provisioning_errors: tuple[ProvisioningErrorRow, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "objectId": self.object_id,
            "sourceAnchor": self.source_anchor,
            "objectType": self.object_type,
            "displayName": self.display_name,
            "userPrincipalName": self.user_principal_name,
            "proxyAddresses": list(self.proxy_addresses),
            "dirSyncProvisioningErrors": [e.as_entry() for e in self.provisioning_errors],
        }


@dataclass(frozen=True, slots=True)
class ObjectSummary:
    object_id: str
    source_anchor: str
    object_type: str
    display_name: str | None
    user_principal_name: str | None
    proxy_addresses: tuple[str, ...]
    provisioning_error_count: int

    def as_json(self) -> dict[str, Any]:
        return {
            "objectId": self.object_id,
            "sourceAnchor": self.source_anchor,
            "objectType": self.object_type,
            "displayName": self.display_name,
            "userPrincipalName": self.user_principal_name,
            "proxyAddresses": list(self.proxy_addresses),
            "provisioningErrorCount": self.provisioning_error_count,
        }


def show_object(session: Session, tenant: Tenant, source_anchor: str) -> ObjectDetail | None:
    """The object as the cloud sees it; a deleted object's tombstone is not an object."""
    obj = session.scalars(
        select(DirectoryObject).where(
            DirectoryObject.tenant_id == tenant.id,
            DirectoryObject.source_anchor == source_anchor,
            DirectoryObject.deleted.is_(false()),
        )
    ).first()
    if obj is None:
        return None
    entries = session.execute(
        entries_with_holders()
        .where(ProvisioningError.object_pk == obj.id)
        .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
    )
    return ObjectDetail(
        object_id=obj.object_id,
        source_anchor=obj.source_anchor,
        object_type=obj.object_class,
        display_name=obj.display_name,
        user_principal_name=obj.upn,
        proxy_addresses=tuple(obj.proxy_addresses or ()),
        provisioning_errors=tuple(error_row(row) for row in entries),
    )


def list_objects(session: Session, tenant: Tenant) -> list[ObjectSummary]:
    """Every live object of the tenant with how many provisioning errors it has."""
    error_count = (
        select(func.count(ProvisioningError.id))
        .where(ProvisioningError.object_pk == DirectoryObject.id)
        .correlate(DirectoryObject)
        .scalar_subquery()
    )
    rows = session.execute(
        select(DirectoryObject, error_count.label("error_count"))
        .where(DirectoryObject.tenant_id == tenant.id, DirectoryObject.deleted.is_(false()))
        .order_by(func.lower(DirectoryObject.display_name), DirectoryObject.source_anchor)
    )
    return [
        ObjectSummary(
            object_id=obj.object_id,
            source_anchor=obj.source_anchor,
            object_type=obj.object_class,
            display_name=obj.display_name,
            user_principal_name=obj.upn,
            proxy_addresses=tuple(obj.proxy_addresses or ()),
            provisioning_error_count=int(count),
        )
        for obj, count in rows
    ]
