"""Provisioning-error entries as read: the row shape, the filter of `errors list`, the joined query.

An entry names whoever holds the value *now*, because the stored `conflicting_object_id` goes stale
when a holder lets go and the next waiter takes over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Subquery, and_, false, func, or_, select

from shared.core.timestamps import iso_utc
from shared.core.values import InvalidValue, parse_proxy_address, value_key
from shared.queries.options import PROPERTY_CONFLICT, SortDirection, SortField
from shared.store.tables import (
    ClaimedValue,
    DirectoryObject,
    ProvisioningError,
    Tenant,
)


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
    holder_source_anchor: str | None = None  # None when the named holder is gone
    holder_display_name: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The docs/design.md §3 (command line) shape of `errors list --json`, exactly."""
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


def like_pattern(search: str) -> str:
    """`%search%` where `%`, `_` and `\\` in the search mean themselves."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(column: Any, search: str) -> ColumnElement[bool]:
    """Case-insensitive substring match, tested row by row as rows are read in order.

    Written with lower() so PostgreSQL does not answer it from a trigram index: for a common string,
    reading in order and stopping at the limit is far cheaper. `indexed_contains` is the other way.
    """
    return func.lower(column).like(func.lower(like_pattern(search)), escape="\\")


def indexed_contains(column: Any, search: str) -> ColumnElement[bool]:
    """Case-insensitive substring match that a trigram GIN index on `column` answers."""
    matches: ColumnElement[bool] = column.ilike(like_pattern(search), escape="\\")
    return matches


# Core aliases, built once: an ORM `aliased()` per query costs milliseconds of column adaptation.
_HOLDER = DirectoryObject.__table__.alias("holder")  # whoever holds the entry's value now
_NAMED = DirectoryObject.__table__.alias("named")  # the holder the entry names, for its anchor and name


def entries_with_holders(page: Subquery | None = None) -> Select[*tuple[Any, ...]]:
    """Entries joined to their object and to whoever holds the value now (if anyone).

    With `page` (a subquery of entry ids, already filtered and limited) only those entries are read:
    the holder lookups then cost a few hundred index probes, not one per candidate row.
    """
    holder, named = _HOLDER.c, _NAMED.c
    conflicting = func.coalesce(holder.object_id, ProvisioningError.conflicting_object_id)
    entries: Any = ProvisioningError
    if page is not None:
        entries = page.join(ProvisioningError, ProvisioningError.id == page.c.id)
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
            named.source_anchor.label("holder_source_anchor"),
            named.display_name.label("holder_display_name"),
        )
        .select_from(entries)
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .outerjoin(
            ClaimedValue,
            and_(ClaimedValue.tenant_id == ProvisioningError.tenant_id, ClaimedValue.key == ProvisioningError.key),
        )
        .outerjoin(_HOLDER, holder.id == ClaimedValue.object_pk)
        .outerjoin(
            _NAMED,
            and_(
                named.object_id == conflicting,
                named.tenant_id == ProvisioningError.tenant_id,
                named.deleted.is_(false()),
            ),
        )
        .where(DirectoryObject.deleted.is_(false()))
    )


_ERROR_ROW_WIDTH = 12  # the leading columns of `entries_with_holders`, in ProvisioningErrorRow's field order


def error_row(row: Any) -> ProvisioningErrorRow:
    """By position, not by name: a page of 500 rows costs a third of the Python that way."""
    return ProvisioningErrorRow(*row[:_ERROR_ROW_WIDTH])


def nulls_ordered(column: Any, direction: SortDirection) -> Any:
    """PostgreSQL's NULL placement made explicit (last ascending, first descending), on SQLite too."""
    if direction is SortDirection.DESCENDING:
        return column.desc().nulls_first()
    return column.asc().nulls_last()


def entry_ordering(sort_field: SortField, direction: SortDirection) -> list[Any]:
    """The chosen field first; time occurred then id keep equal names in a stable order."""

    def directed(column: Any) -> Any:
        return nulls_ordered(column, direction)

    tie_break = [directed(ProvisioningError.occurred_at), directed(ProvisioningError.id)]
    if sort_field is SortField.DISPLAY_NAME:
        return [directed(func.lower(DirectoryObject.display_name)), *tie_break]
    if sort_field is SortField.USER_PRINCIPAL_NAME:
        return [directed(func.lower(DirectoryObject.upn)), *tie_break]
    return tie_break


@dataclass(frozen=True, slots=True)
class ErrorFilter:
    """Which entries a reader asks for: the filters of `errors list`, plus an optional object class."""

    category: str = PROPERTY_CONFLICT
    property_name: str | None = None
    property_value: str | None = None
    search: str | None = None
    object_type: str | None = None

    def conditions(self, tenant: Tenant) -> list[ColumnElement[bool]]:
        """WHERE conditions on `ProvisioningError` and its `DirectoryObject` (both must be in the query)."""
        where = [
            ProvisioningError.tenant_id == tenant.id,
            ProvisioningError.category == self.category,
            DirectoryObject.deleted.is_(false()),
        ]
        if self.property_name is not None:
            where.append(ProvisioningError.property_name == self.property_name)
        if self.property_value is not None:
            key = property_value_key(self.property_value)
            where.append(ProvisioningError.key == key if key is not None else false())
        if self.search:
            where.append(
                or_(
                    contains(DirectoryObject.display_name, self.search),
                    contains(DirectoryObject.upn, self.search),
                    contains(ProvisioningError.property_value, self.search),
                )
            )
        if self.object_type is not None:
            where.append(DirectoryObject.object_class == self.object_type)
        return where
