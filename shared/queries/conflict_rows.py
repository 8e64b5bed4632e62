"""The conflicts list flattened to one row per conflict, a page at a time: what the CSV download holds.

Each page is a page of `list_conflicted_objects` (the same filter, order and keyset), so the download
lists what the report's pages list, in their order, however many there are; one more indexed
read per page adds when each entry went out in an error report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.queries.conflict_pages import PagePosition, list_conflicted_objects
from shared.queries.options import SortDirection, SortField
from shared.queries.provisioning_errors import ErrorFilter
from shared.store.tables import ProvisioningError, Tenant


@dataclass(frozen=True, slots=True)
class ConflictRow:
    """One conflict: the waiting object, whoever holds the value (anchor None: gone), the value, when."""

    waiter_display_name: str | None
    waiter_source_anchor: str
    waiter_type: str
    holder_display_name: str | None
    holder_source_anchor: str | None
    holder_object_id: str
    property_name: str
    property_value: str
    occurred: datetime
    reported: datetime | None


def conflict_rows(
    session: Session,
    tenant: Tenant,
    wanted: ErrorFilter,
    *,
    sort_field: SortField = SortField.NONE,
    sort_direction: SortDirection = SortDirection.ASCENDING,
    limit: int = 500,
    after: PagePosition | None = None,
) -> tuple[list[ConflictRow], PagePosition | None]:
    """The conflicts of up to `limit` objects past `after`, and the position to go on from (None: done)."""
    page = list_conflicted_objects(
        session, tenant, wanted, sort_field=sort_field, sort_direction=sort_direction, limit=limit, after=after
    )
    pks = [obj.object_pk for obj in page.objects]
    reported: dict[tuple[int, str], datetime | None] = {}
    if pks:
        found = session.execute(
            select(ProvisioningError.object_pk, ProvisioningError.property_value, ProvisioningError.reported_at).where(
                ProvisioningError.object_pk.in_(pks), ProvisioningError.category == wanted.category
            )
        )
        # One entry per object and value key, and a value has one key: (object, value) names one entry.
        reported = {(pk, value): at for pk, value, at in found}
    rows = [
        ConflictRow(
            waiter_display_name=obj.display_name,
            waiter_source_anchor=obj.source_anchor,
            waiter_type=obj.object_type,
            holder_display_name=entry.holder_display_name,
            holder_source_anchor=entry.holder_source_anchor,
            holder_object_id=entry.conflicting_object_id,
            property_name=entry.property_name,
            property_value=entry.property_value,
            occurred=entry.time_occurred,
            reported=reported.get((obj.object_pk, entry.property_value)),
        )
        for obj in page.objects
        for entry in obj.entries
    ]
    following = page.objects[-1].position(sort_field) if page.more and page.objects else None
    return rows, following
