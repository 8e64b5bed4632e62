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

from sqlalchemy import ColumnElement, Select, Subquery, and_, false, func, or_, select, text, tuple_, union
from sqlalchemy.orm import Session

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
    holder_source_anchor: str | None = None  # None when the named holder is gone
    holder_display_name: str | None = None

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


def _like_pattern(search: str) -> str:
    """`%search%` where `%`, `_` and `\\` in the search mean themselves."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, search: str) -> ColumnElement[bool]:
    """Case-insensitive substring match, tested row by row as rows are read in order.

    Written with lower() so PostgreSQL does not answer it from a trigram index: for a common string,
    reading in order and stopping at the limit is far cheaper. `_indexed_contains` is the other way.
    """
    return func.lower(column).like(func.lower(_like_pattern(search)), escape="\\")


def _indexed_contains(column: Any, search: str) -> ColumnElement[bool]:
    """Case-insensitive substring match that a trigram GIN index on `column` answers."""
    return column.ilike(_like_pattern(search), escape="\\")


# Core aliases, built once: an ORM `aliased()` per query costs milliseconds of column adaptation.
_HOLDER = DirectoryObject.__table__.alias("holder")  # whoever holds the entry's value now
_NAMED = DirectoryObject.__table__.alias("named")  # the holder the entry names, for its anchor and name


def _provisioning_errors(page: Subquery | None = None) -> Select[Any]:
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


_ERROR_ROW_WIDTH = 12  # the leading columns of `_provisioning_errors`, in ProvisioningErrorRow's field order


def _error_row(row: Any) -> ProvisioningErrorRow:
    """By position, not by name: a page of 500 rows costs a third of the Python that way."""
    return ProvisioningErrorRow(*row[:_ERROR_ROW_WIDTH])


def _directed(column: Any, direction: SortDirection) -> Any:
    """PostgreSQL's NULL placement made explicit (last ascending, first descending), on SQLite too."""
    if direction is SortDirection.DESCENDING:
        return column.desc().nulls_first()
    return column.asc().nulls_last()


def _ordering(sort_field: SortField, direction: SortDirection) -> list[Any]:
    """The chosen field first; time occurred then id keep equal names in a stable order."""

    def directed(column: Any) -> Any:
        return _directed(column, direction)

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
                    _contains(DirectoryObject.display_name, self.search),
                    _contains(DirectoryObject.upn, self.search),
                    _contains(ProvisioningError.property_value, self.search),
                )
            )
        if self.object_type is not None:
            where.append(DirectoryObject.object_class == self.object_type)
        return where


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
    ordering = _ordering(SortField(sort_field), SortDirection(sort_direction))

    def run(conditions: list[ColumnElement[bool]]) -> list[ProvisioningErrorRow]:
        query = _provisioning_errors().where(*conditions).order_by(*ordering)
        if limit is not None:
            query = query.limit(limit)
        return [_error_row(row) for row in session.connection().execute(query)]  # Core: no ORM row handling

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
    if len(search) >= _TRIGRAM and not _matches_many(session, tenant, search):
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
    order = [_directed(ProvisioningError.occurred_at, direction), _directed(ProvisioningError.id, direction)]
    indexable = len(wanted.search or "") >= _TRIGRAM
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
            .order_by(_directed(window_ids.c.occurred_at, direction), _directed(window_ids.c.id, direction))
            .limit(limit - len(found))
            .subquery("page")
        )
        rows = session.connection().execute(_provisioning_errors(page).order_by(*order)).all()
        found.extend(_error_row(row) for row in rows)
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


_TRIGRAM = 3  # trigram indexes cannot help a shorter search string
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
        {"pattern": _like_pattern(search), "tenant": tenant.id},
    ).one()
    objects, matching_objects, entries, matching_entries = row
    return (objects > 0 and matching_objects / objects >= _COMMON_SHARE) or (
        entries > 0 and matching_entries / entries >= _COMMON_SHARE
    )


def _search_by_index(tenant: Tenant, text: str) -> ColumnElement[bool]:
    """The search as a set of entry ids, each part answerable by a trigram index.

    Fast when few entries match; `_matches_many` sends common strings the other way.
    """
    by_value = select(ProvisioningError.id).where(
        ProvisioningError.tenant_id == tenant.id, _indexed_contains(ProvisioningError.property_value, text)
    )
    by_object = (
        select(ProvisioningError.id)
        .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
        .where(
            DirectoryObject.tenant_id == tenant.id,
            or_(_indexed_contains(DirectoryObject.display_name, text), _indexed_contains(DirectoryObject.upn, text)),
        )
    )
    return ProvisioningError.id.in_(union(by_value, by_object))


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


# --- conflicted objects, a page at a time (the HTTP API and the web report) -----------------------


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
    """Rows after `position` in the order `_directed` gives (NULLs last ascending, first descending)."""
    value = position.sort_value
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
    query = query.order_by(_directed(key, direction), _directed(DirectoryObject.id, direction)).limit(limit + 1)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    if backward:
        rows.reverse()
    pks = [obj.id for obj, _ in rows]
    entries: dict[int, list[ProvisioningErrorRow]] = {pk: [] for pk in pks}
    if pks:
        found = session.execute(
            _provisioning_errors()
            .add_columns(ProvisioningError.object_pk)
            .where(*wanted.conditions(tenant), ProvisioningError.object_pk.in_(pks))
            .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
        )
        for row in found:
            entries[row.object_pk].append(_error_row(row))
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
