"""Users, groups and contacts as the Graph face reads them: a filtered, ordered page by keyset, a count, one object.

Every condition runs in PostgreSQL (`graph_filter`); Python only shapes the page it gets back. A page
reads one row more than it shows, to know whether another page follows; its objects' provisioning
errors come in one more query, each naming whoever holds the value now (`entries_with_holders`).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, and_, distinct, false, func, literal, or_, select
from sqlalchemy.orm import Session

from shared.queries.graph_ast import AnyElement, Collection, Condition
from shared.queries.graph_filter import ERROR_ENTRY, entry_condition, filter_condition, like_prefix
from shared.queries.provisioning_errors import ProvisioningErrorRow, entries_with_holders, error_row
from shared.store.tables import DirectoryObject, ProvisioningError, Tenant

OBJECT_CLASS = {Collection.USERS: "User", Collection.GROUPS: "Group", Collection.CONTACTS: "Contact"}
OrderField = Literal["displayName", "userPrincipalName"]


@dataclass(frozen=True, slots=True)
class GraphObject:
    """One live object with what Graph shows of it; `errors` oldest first."""

    pk: int
    object_id: str
    object_class: str
    source_anchor: str
    display_name: str | None
    user_principal_name: str | None
    mail: str | None
    mail_nickname: str | None
    proxy_addresses: tuple[str, ...]
    errors: tuple[ProvisioningErrorRow, ...]
    sort_key: str | None = None  # the lower-cased $orderby value, for the next page's position


@dataclass(frozen=True, slots=True)
class Position:
    """Where the previous page ended: its last object's lower-cased sort value (if ordered) and row id."""

    sort_key: str | None
    pk: int


@dataclass(frozen=True, slots=True)
class GraphQuery:
    collection: Collection
    condition: Condition | None = None
    search: str | None = None  # a word prefix of displayName, any case
    order_by: OrderField | None = None
    descending: bool = False
    top: int = 100
    after: Position | None = None
    with_errors: bool = True  # False when $select leaves the errors out: one query fewer


@dataclass(frozen=True, slots=True)
class GraphPage:
    objects: list[GraphObject]
    more: bool


_ORDER_COLUMNS: dict[OrderField, Any] = {
    "displayName": DirectoryObject.display_name,
    "userPrincipalName": DirectoryObject.upn,
}


def _matching(session: Session, tenant: Tenant, query: GraphQuery) -> list[ColumnElement[bool]]:
    """The tenant's live objects of the collection's class that the filter and search keep."""
    dialect = session.get_bind().dialect.name
    where = _live_of_class(tenant, query.collection)
    if query.condition is not None:
        where.append(filter_condition(query.condition, dialect))
    if query.search is not None:
        where.append(_word_prefix(DirectoryObject.display_name, query.search, dialect))
    return where


def _live_of_class(tenant: Tenant, collection: Collection) -> list[ColumnElement[bool]]:
    return [
        DirectoryObject.tenant_id == tenant.id,
        DirectoryObject.object_class == OBJECT_CLASS[collection],
        DirectoryObject.deleted == false(),  # `=`, not IS: the partial Graph indexes say `deleted = false`
    ]


def _word_prefix(column: Any, term: str, dialect: str) -> ColumnElement[bool]:
    """Graph's `$search="displayName:term"`: a word of the name starts with the term, any case.

    Words split at any character that is not a letter or digit (Graph also splits camelCase; this
    does not). On PostgreSQL one regular expression, which the trigram index on display_name answers.
    """
    if dialect == "postgresql":
        matched: ColumnElement[bool] = column.op("~*")(literal(r"(^|[^[:alnum:]])" + re.escape(term)))
        return matched
    lowered = func.lower(column)
    return or_(
        lowered.like(func.lower(literal(like_prefix(term))), escape="\\"),
        lowered.like(func.lower(literal("% " + like_prefix(term))), escape="\\"),
    )


def count_directory_objects(session: Session, tenant: Tenant, query: GraphQuery) -> int:
    """`@odata.count`: every object the filter and search keep, not only the page.

    A filter that is one any() over the errors is counted from the entries alone, as the distinct
    objects among those that match (an index-only scan of `(tenant_id, object_class, object_pk)`):
    joining each to its object cost about 6 µs an entry, 60 ms for 10,000. That is the same answer
    because an entry carries its object's class and tenant, and a deleted object has no entries
    (a delete closes them all, a release skips a tombstone): tests/shared/test_entry_object_class.py.
    """
    only = _errors_any(query)
    if only is not None:
        matched = _matching_entries(session, tenant, query, only)
        statement = matched.with_only_columns(func.count(distinct(ERROR_ENTRY.c.object_pk)))
    else:
        statement = select(func.count()).select_from(DirectoryObject).where(*_matching(session, tenant, query))
    return int(session.scalar(statement) or 0)


def _matching_entries(session: Session, tenant: Tenant, query: GraphQuery, only: AnyElement) -> Select[tuple[int]]:
    """The object row ids of the tenant's entries that `only` keeps, of the collection's class."""
    entry = ERROR_ENTRY.c
    return select(entry.object_pk).where(
        entry.tenant_id == tenant.id,
        entry.object_class == OBJECT_CLASS[query.collection],
        entry_condition(only, session.get_bind().dialect.name),
    )


def _errors_any(query: GraphQuery) -> AnyElement | None:
    """The any() over the errors that is the whole of the query's condition, if it is."""
    condition = query.condition
    if query.search is None and isinstance(condition, AnyElement):
        return condition if condition.collection == "onPremisesProvisioningErrors" else None
    return None


def list_directory_objects(session: Session, tenant: Tenant, query: GraphQuery) -> GraphPage:
    """One page in `$orderby` order (row id breaks ties; without `$orderby`, row id alone).

    A filter that is one any() over the errors, in id order, walks the matching entries in object
    order and looks up each object until the page is full (about 1 ms for a page of 100), where the
    EXISTS walked the objects and probed each for entries (15-35 ms when 1 % have errors).
    """
    key = func.lower(_ORDER_COLUMNS[query.order_by]) if query.order_by else None
    only = _errors_any(query)
    statement = select(*_OBJECT_COLUMNS, (key if key is not None else literal(None)).label("sort_key"))
    if only is not None and key is None:
        entries = _matching_entries(session, tenant, query, only)
        if query.after is not None:  # also here, so the walk starts where the last page ended
            pk = ERROR_ENTRY.c.object_pk
            entries = entries.where(pk < query.after.pk if query.descending else pk > query.after.pk)
        matched = entries.distinct().subquery("matched")
        statement = statement.join_from(DirectoryObject, matched, DirectoryObject.id == matched.c.object_pk)
        where = _live_of_class(tenant, query.collection)
    else:
        where = _matching(session, tenant, query)
    if query.after is not None:
        where.append(_beyond(key, query.after, query.descending))
    if key is None:
        order = [DirectoryObject.id.desc() if query.descending else DirectoryObject.id]
    elif query.descending:
        order = [key.desc().nulls_first(), DirectoryObject.id.desc()]
    else:
        order = [key.asc().nulls_last(), DirectoryObject.id]
    rows = session.execute(statement.where(*where).order_by(*order).limit(query.top + 1)).all()
    more = len(rows) > query.top
    rows = rows[: query.top]
    errors = _errors_of(session, [row[0] for row in rows]) if query.with_errors else {}
    return GraphPage([_object(row, errors.get(row[0], ()), row[-1]) for row in rows], more)


def find_directory_object(
    session: Session, tenant: Tenant, collection: Collection, id_or_upn: str
) -> GraphObject | None:
    """By objectId, or for users also by userPrincipalName (the effective one, any case)."""
    where = _live_of_class(tenant, collection)
    try:
        where.append(DirectoryObject.object_id == str(uuid.UUID(id_or_upn)))
    except ValueError:
        if collection is not Collection.USERS:
            return None
        where.append(func.lower(DirectoryObject.upn) == func.lower(literal(id_or_upn)))
    row = session.execute(select(*_OBJECT_COLUMNS).where(*where).limit(1)).first()
    if row is None:
        return None
    return _object(row, _errors_of(session, [row[0]]).get(row[0], ()), None)


_OBJECT_COLUMNS = (
    DirectoryObject.id,
    DirectoryObject.object_id,
    DirectoryObject.object_class,
    DirectoryObject.source_anchor,
    DirectoryObject.display_name,
    DirectoryObject.upn,
    DirectoryObject.attributes["mail"].as_string(),
    DirectoryObject.attributes["mailNickname"].as_string(),
    DirectoryObject.proxy_addresses,
)


def _object(row: Any, errors: tuple[ProvisioningErrorRow, ...], sort_key: str | None) -> GraphObject:
    pk, object_id, object_class, anchor, name, upn, mail, nickname, proxies = row[:9]
    return GraphObject(
        pk, object_id, object_class, anchor, name, upn, mail, nickname, tuple(proxies or ()), errors, sort_key
    )


def _beyond(key: Any, after: Position, descending: bool) -> ColumnElement[bool]:
    """Rows after `after` in the page order: NULL sort values last ascending, first descending."""
    pk = DirectoryObject.id
    if key is None:
        return pk < after.pk if descending else pk > after.pk
    if after.sort_key is None:
        if descending:
            return or_(and_(key.is_(None), pk < after.pk), key.is_not(None))
        return and_(key.is_(None), pk > after.pk)
    value = literal(after.sort_key)
    if descending:
        return or_(key < value, and_(key == value, pk < after.pk))
    return or_(key > value, and_(key == value, pk > after.pk), key.is_(None))


def _errors_of(session: Session, pks: list[int]) -> dict[int, tuple[ProvisioningErrorRow, ...]]:
    if not pks:
        return {}
    rows = session.execute(
        entries_with_holders()
        .add_columns(ProvisioningError.object_pk)
        .where(ProvisioningError.object_pk.in_(pks))
        .order_by(ProvisioningError.object_pk, ProvisioningError.occurred_at, ProvisioningError.id)
    )
    found: dict[int, list[ProvisioningErrorRow]] = {}
    for row in rows:
        found.setdefault(row[-1], []).append(error_row(row))
    return {pk: tuple(entries) for pk, entries in found.items()}
