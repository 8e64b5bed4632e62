"""Read-side queries behind the command line: what an operator asks about a tenant.

Every query is a plain `select()`; nothing here writes. A provisioning error names whoever holds the
value *now*, because the stored `conflicting_object_id` goes stale when a holder lets go and the
next waiter takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import Session, aliased

from shared.models import (
    ClaimedValue,
    DirectoryObject,
    FailedExport,
    ProvisioningError,
    Tenant,
)
from shared.values import InvalidValue, parse_proxy_address, value_key

DEFAULT_LIMIT = 500
PROPERTY_CONFLICT = "PropertyConflict"
ERROR_CATEGORIES = (PROPERTY_CONFLICT,)


class SortField(StrEnum):
    DISPLAY_NAME = "DisplayName"
    USER_PRINCIPAL_NAME = "UserPrincipalName"
    NONE = "None"


class SortDirection(StrEnum):
    ASCENDING = "Ascending"
    DESCENDING = "Descending"


def iso_utc(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`; SQLite hands back naive datetimes, which are UTC by construction."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ProvisioningErrorRow:
    """One `dirSyncProvisioningErrors` entry with the object it belongs to."""

    object_id: str
    source_anchor: str
    object_type: str
    display_name: str | None
    user_principal_name: str | None
    error_category: str
    property_name: str
    property_value: str
    conflicting_object_id: str
    time_occurred: datetime

    def as_json(self) -> dict[str, Any]:
        """The DESIGN §3 shape of `errors list --json`, exactly."""
        return {
            "objectId": self.object_id,
            "sourceAnchor": self.source_anchor,
            "objectType": self.object_type,
            "displayName": self.display_name,
            "errorCategory": self.error_category,
            "propertyName": self.property_name,
            "propertyValue": self.property_value,
            "conflictingObjectId": self.conflicting_object_id,
            "timeOccurred": iso_utc(self.time_occurred),
        }

    def as_entry(self) -> dict[str, Any]:
        """The entry as it appears inside an object's `dirSyncProvisioningErrors`."""
        return {
            "errorCategory": self.error_category,
            "propertyName": self.property_name,
            "propertyValue": self.property_value,
            "conflictingObjectId": self.conflicting_object_id,
            "timeOccurred": iso_utc(self.time_occurred),
        }


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


def property_value_key(value: str) -> str | None:
    """The namespace key a `--property-value` can match, or None when no entry can have it.

    Entries are keyed by the lower-cased address, so `smtp:Bob@x.com`, `SMTP:bob@x.com` and
    `BOB@x.com` all find the same entry. Non-SMTP proxy types are never quarantined.
    """
    if ":" not in value:
        return value_key(value)
    try:
        proxy = parse_proxy_address(value)
    except InvalidValue:
        return value_key(value)
    return proxy.key if proxy.is_smtp else None


def _contains(column: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match where `%`, `_` and `\\` in the text mean themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


def _provisioning_errors() -> Select[Any]:
    """Entries joined to their object and to whoever holds the value now (if anyone)."""
    holder = aliased(DirectoryObject, name="holder")
    conflicting = func.coalesce(holder.object_id, ProvisioningError.conflicting_object_id)
    return (
        select(
            DirectoryObject.object_id,
            DirectoryObject.source_anchor,
            DirectoryObject.object_class,
            DirectoryObject.display_name,
            DirectoryObject.upn,
            ProvisioningError.category,
            ProvisioningError.property_name,
            ProvisioningError.property_value,
            conflicting.label("conflicting_object_id"),
            ProvisioningError.occurred_at,
        )
        .select_from(ProvisioningError)
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .outerjoin(
            ClaimedValue,
            and_(ClaimedValue.tenant_id == ProvisioningError.tenant_id, ClaimedValue.key == ProvisioningError.key),
        )
        .outerjoin(holder, holder.id == ClaimedValue.object_pk)
        .where(DirectoryObject.deleted.is_(false()))
    )


def _error_row(row: Any) -> ProvisioningErrorRow:
    return ProvisioningErrorRow(
        object_id=row.object_id,
        source_anchor=row.source_anchor,
        object_type=row.object_class,
        display_name=row.display_name,
        user_principal_name=row.upn,
        error_category=row.category,
        property_name=row.property_name,
        property_value=row.property_value,
        conflicting_object_id=row.conflicting_object_id,
        time_occurred=row.occurred_at,
    )


def _ordering(sort_field: SortField, direction: SortDirection) -> list[Any]:
    """The chosen field first; time occurred then id keep equal names in a stable order."""

    def directed(column: Any) -> Any:
        return column.desc() if direction is SortDirection.DESCENDING else column.asc()

    tie_break = [directed(ProvisioningError.occurred_at), directed(ProvisioningError.id)]
    if sort_field is SortField.DISPLAY_NAME:
        return [directed(func.lower(DirectoryObject.display_name)), *tie_break]
    if sort_field is SortField.USER_PRINCIPAL_NAME:
        return [directed(func.lower(DirectoryObject.upn)), *tie_break]
    return tie_break


def list_provisioning_errors(
    session: Session,
    tenant: Tenant,
    *,
    category: str,
    property_name: str | None = None,
    property_value: str | None = None,
    search: str | None = None,
    sort_field: SortField | str = SortField.NONE,
    sort_direction: SortDirection | str = SortDirection.ASCENDING,
    limit: int | None = DEFAULT_LIMIT,
) -> list[ProvisioningErrorRow]:
    """The tenant's provisioning errors, filtered and sorted like `errors list` asks; `limit=None` is all."""
    query = _provisioning_errors().where(
        ProvisioningError.tenant_id == tenant.id, ProvisioningError.category == category
    )
    if property_name is not None:
        query = query.where(ProvisioningError.property_name == property_name)
    if property_value is not None:
        key = property_value_key(property_value)
        query = query.where(ProvisioningError.key == key if key is not None else false())
    if search:
        query = query.where(
            or_(
                _contains(DirectoryObject.display_name, search),
                _contains(DirectoryObject.upn, search),
                _contains(ProvisioningError.property_value, search),
            )
        )
    query = query.order_by(*_ordering(SortField(sort_field), SortDirection(sort_direction)))
    if limit is not None:
        query = query.limit(limit)
    return [_error_row(row) for row in session.execute(query)]


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
        _provisioning_errors()
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
        provisioning_errors=tuple(_error_row(row) for row in entries),
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
