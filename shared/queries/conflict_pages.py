"""Conflicted objects a page at a time (the HTTP API and the web report), by keyset position.

Keyset paging stays correct while entries come and go between pages, which an offset would not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from shared.queries.options import SortDirection, SortField
from shared.queries.provisioning_errors import (
    ErrorFilter,
    ProvisioningErrorRow,
    entries_with_holders,
    error_row,
    nulls_ordered,
)
from shared.store.tables import (
    DirectoryObject,
    ProvisioningError,
    Tenant,
)


@dataclass(frozen=True, slots=True)
class PagePosition:
    """A keyset cursor: the sort value of the last object shown and its row id.

    `sort_value` is the raw display name or UPN (compared lower-cased, as sorted), or the time of
    the object's first matching entry when sorting by `None`. Keyset paging stays correct while
    entries come and go between pages, which an offset would not.
    """

    sort_value: str | datetime | None
    object_pk: int


@dataclass(frozen=True, slots=True)
class ConflictedObject:
    """An object with the entries that matched the filter, oldest first."""

    object_pk: int
    object_id: str
    source_anchor: str
    object_type: str
    display_name: str | None
    user_principal_name: str | None
    proxy_addresses: tuple[str, ...]
    first_occurred: datetime
    entries: tuple[ProvisioningErrorRow, ...]

    def position(self, sort_field: SortField) -> PagePosition:
        if sort_field is SortField.DISPLAY_NAME:
            return PagePosition(self.display_name, self.object_pk)
        if sort_field is SortField.USER_PRINCIPAL_NAME:
            return PagePosition(self.user_principal_name, self.object_pk)
        return PagePosition(self.first_occurred, self.object_pk)


@dataclass(frozen=True, slots=True)
class ConflictPage:
    """Objects in display order; `more` says whether objects lie beyond the page in the direction read."""

    objects: list[ConflictedObject]
    more: bool


def _flipped(direction: SortDirection) -> SortDirection:
    return SortDirection.ASCENDING if direction is SortDirection.DESCENDING else SortDirection.DESCENDING


def _beyond(key: Any, pk: Any, position: PagePosition, direction: SortDirection, lower: bool) -> ColumnElement[bool]:
    """Rows after `position` in the order `nulls_ordered` gives (NULLs last ascending, first descending)."""
    value: Any = position.sort_value
    if value is not None and lower:
        value = func.lower(value)
    if direction is SortDirection.DESCENDING:
        if value is None:
            return or_(and_(key.is_(None), pk < position.object_pk), key.is_not(None))
        return or_(key < value, and_(key == value, pk < position.object_pk))
    if value is None:
        return and_(key.is_(None), pk > position.object_pk)
    return or_(key > value, and_(key == value, pk > position.object_pk), key.is_(None))


def list_conflicted_objects(
    session: Session,
    tenant: Tenant,
    wanted: ErrorFilter,
    *,
    sort_field: SortField = SortField.NONE,
    sort_direction: SortDirection = SortDirection.ASCENDING,
    limit: int = 100,
    after: PagePosition | None = None,
    backward: bool = False,
) -> ConflictPage:
    """Objects with matching entries, sorted by display name, UPN or first entry, then row id.

    `after` continues past a position; with `backward` the page is the one *before* it instead
    (read in the flipped order, handed back in display order), so a reader can page both ways.
    """
    matching = (
        select(
            ProvisioningError.object_pk.label("object_pk"),
            func.min(ProvisioningError.occurred_at).label("first_occurred"),
        )
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .where(*wanted.conditions(tenant))
        .group_by(ProvisioningError.object_pk)
        .subquery("matching")
    )
    if sort_field is SortField.DISPLAY_NAME:
        key: Any = func.lower(DirectoryObject.display_name)
    elif sort_field is SortField.USER_PRINCIPAL_NAME:
        key = func.lower(DirectoryObject.upn)
    else:
        key = matching.c.first_occurred
    direction = _flipped(sort_direction) if backward else sort_direction
    query = select(DirectoryObject, matching.c.first_occurred).join(
        matching, matching.c.object_pk == DirectoryObject.id
    )
    if after is not None:
        query = query.where(_beyond(key, DirectoryObject.id, after, direction, lower=sort_field is not SortField.NONE))
    query = query.order_by(nulls_ordered(key, direction), nulls_ordered(DirectoryObject.id, direction)).limit(limit + 1)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    pks = [obj.id for obj, _ in rows]
    entries: dict[int, list[ProvisioningErrorRow]] = {pk: [] for pk in pks}
    if pks:
        found = session.execute(
            entries_with_holders()
            .add_columns(ProvisioningError.object_pk)
            .where(*wanted.conditions(tenant), ProvisioningError.object_pk.in_(pks))
            .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
        )
        for row in found:
            entries[row.object_pk].append(error_row(row))
    objects = [
        ConflictedObject(
            object_pk=obj.id,
            object_id=obj.object_id,
            source_anchor=obj.source_anchor,
            object_type=obj.object_class,
            display_name=obj.display_name,
            user_principal_name=obj.upn,
            proxy_addresses=tuple(obj.proxy_addresses or ()),
            first_occurred=first_occurred,
            entries=tuple(entries[obj.id]),
        )
        for obj, first_occurred in rows
    ]
    return ConflictPage(objects, more)


def count_conflicted_objects_by_type(session: Session, tenant: Tenant, wanted: ErrorFilter) -> dict[str, int]:
    """How many objects of each class have entries matching `wanted` (the class filter itself ignored)."""
    everything = ErrorFilter(wanted.category, wanted.property_name, wanted.property_value, wanted.search)
    rows = session.execute(
        select(DirectoryObject.object_class, func.count(func.distinct(DirectoryObject.id)))
        .select_from(ProvisioningError)
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .where(*everything.conditions(tenant))
        .group_by(DirectoryObject.object_class)
    )
    return {object_class: int(count) for object_class, count in rows}
