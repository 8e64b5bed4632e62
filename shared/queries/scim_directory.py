"""The SCIM face's reads: one object by id or sourceAnchor, and a filtered, sorted page of a class.

An object is read with its open provisioning errors (each naming the holder now), so a response
is the object as stored, as `syncguard object show` and the Graph face see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session

from shared.queries.provisioning_errors import ProvisioningErrorRow, entries_with_holders, error_row
from shared.queries.scim_filter import filter_condition
from shared.store.tables import DirectoryObject, ProvisioningError, Tenant


class ScimSort(StrEnum):
    USER_NAME = "username"
    DISPLAY_NAME = "displayname"
    EXTERNAL_ID = "externalid"
    ID = "id"
    LAST_MODIFIED = "meta.lastmodified"


_SORT_COLUMNS: dict[ScimSort, Any] = {
    ScimSort.USER_NAME: func.lower(DirectoryObject.upn),
    ScimSort.DISPLAY_NAME: func.lower(DirectoryObject.display_name),
    ScimSort.EXTERNAL_ID: DirectoryObject.source_anchor,
    ScimSort.ID: DirectoryObject.object_id,
    ScimSort.LAST_MODIFIED: DirectoryObject.updated_at,
}


@dataclass(frozen=True, slots=True)
class ScimObject:
    """A live object as stored, with its open provisioning errors."""

    row: DirectoryObject
    errors: tuple[ProvisioningErrorRow, ...]


@dataclass(frozen=True, slots=True)
class ScimSearch:
    object_class: str
    filter: str | None = None
    sort_by: ScimSort | None = None
    descending: bool = False
    start_index: int = 1  # 1-based, as SCIM counts
    count: int = 100


def _live(tenant: Tenant, object_class: str) -> list[ColumnElement[bool]]:
    return [
        DirectoryObject.tenant_id == tenant.id,
        DirectoryObject.object_class == object_class,
        DirectoryObject.deleted.is_(false()),
    ]


def _with_errors(session: Session, rows: list[DirectoryObject]) -> list[ScimObject]:
    if not rows:
        return []
    by_pk: dict[int, list[ProvisioningErrorRow]] = {row.id: [] for row in rows}
    found = session.execute(
        entries_with_holders()
        .add_columns(ProvisioningError.object_pk)
        .where(ProvisioningError.object_pk.in_(list(by_pk)))
        .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
    )
    for entry in found:
        by_pk[entry[-1]].append(error_row(entry))
    return [ScimObject(row, tuple(by_pk[row.id])) for row in rows]


def find_by_id(session: Session, tenant: Tenant, object_class: str, object_id: str) -> ScimObject | None:
    row = session.scalars(
        select(DirectoryObject).where(*_live(tenant, object_class), DirectoryObject.object_id == object_id)
    ).first()
    return _with_errors(session, [row])[0] if row is not None else None


def find_by_anchor(session: Session, tenant: Tenant, source_anchor: str) -> DirectoryObject | None:
    """The object of that sourceAnchor, a deleted one's tombstone included (its last sequence counts)."""
    return session.scalars(
        select(DirectoryObject).where(
            DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == source_anchor
        )
    ).first()


def search_objects(session: Session, tenant: Tenant, search: ScimSearch) -> tuple[int, list[ScimObject]]:
    """How many live objects of the class match, and the page `startIndex`/`count` asks for."""
    conditions = _live(tenant, search.object_class)
    if search.filter:
        conditions.append(filter_condition(search.filter))
    total = int(session.scalar(select(func.count()).select_from(DirectoryObject).where(*conditions)) or 0)
    if search.count == 0:
        return total, []
    order: list[Any] = []
    if search.sort_by is not None:
        column = _SORT_COLUMNS[search.sort_by]
        order.append(column.desc().nulls_last() if search.descending else column.asc().nulls_last())
    order.append(DirectoryObject.id)
    rows = list(
        session.scalars(
            select(DirectoryObject)
            .where(*conditions)
            .order_by(*order)
            .offset(max(search.start_index, 1) - 1)
            .limit(search.count)
        )
    )
    return total, _with_errors(session, rows)
