"""`errors list`: choose how to answer a filter and search cheaply on a million entries, then run it.

A common search string is answered by reading entries in time order and stopping at the limit; a rare
one by the trigram indexes. PostgreSQL's own estimate for ILIKE cannot tell the two apart, so the
planner here does.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select, text, tuple_, union
from sqlalchemy.orm import Session

from shared.queries.options import DEFAULT_LIMIT, SortDirection, SortField
from shared.queries.provisioning_errors import (
    ErrorFilter,
    ProvisioningErrorRow,
    entries_with_holders,
    entry_ordering,
    error_row,
    indexed_contains,
    like_pattern,
    nulls_ordered,
)
from shared.store.tables import (
    DirectoryObject,
    ProvisioningError,
    Tenant,
)


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
    wanted = ErrorFilter(category, property_name, property_value, search)
    ordering = entry_ordering(SortField(sort_field), SortDirection(sort_direction))

    def run(conditions: list[ColumnElement[bool]]) -> list[ProvisioningErrorRow]:
        query = entries_with_holders().where(*conditions).order_by(*ordering)
        if limit is not None:
            query = query.limit(limit)
        return [error_row(row) for row in session.connection().execute(query)]  # Core: no ORM row handling

    if not search or session.get_bind().dialect.name != "postgresql":
        return run(wanted.conditions(tenant))
    # Repeated statements get prepared; a generic plan cannot see the pattern, and the right plan depends on it.
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    by_index = [
        *ErrorFilter(category, property_name, property_value).conditions(tenant),
        _search_by_index(tenant, search),
    ]
    if SortField(sort_field) is SortField.NONE and limit is not None:
        # Reading in time order is its own density probe: a common string fills the page from the first window.
        found = _first_matches_in_order(session, tenant, wanted, SortDirection(sort_direction), limit)
        if found is not None:
            return found
        return run(by_index)  # matches too far apart to read in order: rare, so the indexes answer it
    if len(search) >= TRIGRAM and not _matches_many(session, tenant, search):
        return run(by_index)
    return run(wanted.conditions(tenant))


_WINDOW = 1_000
_MAX_WINDOWS = 10  # with _WINDOW: reading in order pays while 1 entry in 20 matches


def _first_matches_in_order(
    session: Session, tenant: Tenant, wanted: ErrorFilter, direction: SortDirection, limit: int
) -> list[ProvisioningErrorRow] | None:
    """Read entries in time order, a window of `_WINDOW` at a time, until `limit` of them match the search.

    For a string that matches often this touches a few thousand rows whatever the table's size, and it
    leaves nothing to the planner's guess about how often a substring matches. Each window is one
    statement: the window, its matches and their holders. None when the first windows show the matches
    too far apart for reading in order to pay (more than `_MAX_WINDOWS` windows), and a trigram index
    can answer the search instead.
    """
    on_entries_alone = [ProvisioningError.tenant_id == tenant.id, ProvisioningError.category == wanted.category]
    if wanted.property_name is not None:
        on_entries_alone.append(ProvisioningError.property_name == wanted.property_name)
    descending = direction is SortDirection.DESCENDING
    position = tuple_(ProvisioningError.occurred_at, ProvisioningError.id)
    order = [nulls_ordered(ProvisioningError.occurred_at, direction), nulls_ordered(ProvisioningError.id, direction)]
    indexable = len(wanted.search or "") >= TRIGRAM
    found: list[ProvisioningErrorRow] = []
    after: Any = None
    read = 0
    while len(found) < limit:
        window = (
            select(ProvisioningError.id, ProvisioningError.occurred_at)
            .where(*on_entries_alone)
            .order_by(*order)
            .limit(_WINDOW)
        )
        if after is not None:
            window = window.where(position < tuple_(*after) if descending else position > tuple_(*after))
        window_ids = window.subquery("window")
        page = (
            select(ProvisioningError.id)
            .select_from(window_ids)
            .join(ProvisioningError, ProvisioningError.id == window_ids.c.id)
            .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
            .where(*wanted.conditions(tenant))
            # In the window's own order, which PostgreSQL keeps through the joins: the page stops at
            # its limit instead of matching and sorting the whole window first.
            .order_by(nulls_ordered(window_ids.c.occurred_at, direction), nulls_ordered(window_ids.c.id, direction))
            .limit(limit - len(found))
            .subquery("page")
        )
        rows = session.connection().execute(entries_with_holders(page).order_by(*order)).all()
        found.extend(error_row(row) for row in rows)
        read += 1
        if len(found) >= limit:
            break
        edge = session.execute(window.with_only_columns(*position.clauses).offset(_WINDOW - 1).limit(1)).first()
        if edge is None:
            return found  # the last window: every entry has been read
        expected_windows = read * limit / max(len(found), 1)
        if indexable and expected_windows > _MAX_WINDOWS:
            return None
        after = (edge.occurred_at, edge.id)
    return found


TRIGRAM = 3  # trigram indexes cannot help a shorter search string
_COMMON_SHARE = 0.05


def _matches_many(session: Session, tenant: Tenant, search: str) -> bool:
    """Whether the search matches a large share of the tenant's objects, judged on a 0.5 % block sample.

    A common string is answered fastest by reading entries in order and stopping at the limit; a rare
    one by the trigram indexes, whose cost grows with the number of matches. The sample costs a few
    milliseconds and picks the cheaper plan, which PostgreSQL's own estimate for ILIKE cannot.
    """
    row = session.execute(
        text(
            "SELECT * FROM (SELECT count(*), count(*) FILTER (WHERE display_name ILIKE :pattern ESCAPE '\\' "
            "OR upn ILIKE :pattern ESCAPE '\\') FROM directory_objects TABLESAMPLE SYSTEM (0.5) "
            "WHERE tenant_id = :tenant) AS o, (SELECT count(*), count(*) FILTER (WHERE property_value ILIKE :pattern "
            "ESCAPE '\\') FROM provisioning_errors TABLESAMPLE SYSTEM (0.5) WHERE tenant_id = :tenant) AS e"
        ),
        {"pattern": like_pattern(search), "tenant": tenant.id},
    ).one()
    objects, matching_objects, entries, matching_entries = row
    return bool(objects > 0 and matching_objects / objects >= _COMMON_SHARE) or bool(
        entries > 0 and matching_entries / entries >= _COMMON_SHARE
    )


def _search_by_index(tenant: Tenant, text: str) -> ColumnElement[bool]:
    """The search as a set of entry ids, each part answerable by a trigram index.

    Fast when few entries match; `_matches_many` sends common strings the other way.
    """
    by_value = select(ProvisioningError.id).where(
        ProvisioningError.tenant_id == tenant.id, indexed_contains(ProvisioningError.property_value, text)
    )
    by_object = (
        select(ProvisioningError.id)
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .where(
            DirectoryObject.tenant_id == tenant.id,
            or_(indexed_contains(DirectoryObject.display_name, text), indexed_contains(DirectoryObject.upn, text)),
        )
    )
    return ProvisioningError.id.in_(union(by_value, by_object))
