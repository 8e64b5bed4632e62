"""An object's row and state as one export or release reads and writes it, inside its transaction.

SQLAlchemy Core on one connection, not the ORM: this is the hot path, and every statement here is one
round trip that the plan actually needs. An export of a new object costs four, conflict or not: lock
its row, read its state, insert it, and claim its values (with its new entries, on PostgreSQL). The
independent exports of a batch pay those four once for all of them (`lock_object_rows`,
`read_batch_state`, `insert_objects`, and `claim_values_many` in claims).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    String,
    bindparam,
    cast,
    insert,
    literal,
    null,
    select,
    text,
    tuple_,
    union_all,
    update,
)

from shared.core.decision import CurrentState, DesiredState, Features, PropertyName, Quarantine
from shared.core.values import parse_proxy_address
from shared.store.tables import (
    Tenant,
    claims,
    entries,
    failures,
    objects,
    tenants,
)

# Typed NULLs for the padded columns of the one-round-trip UNION below (PostgreSQL wants them typed).
_NO_TEXT = cast(null(), String())
_NO_TIME = cast(null(), DateTime(timezone=True))
_NO_INT = cast(null(), BigInteger())


@dataclass(frozen=True, slots=True)
class TenantInfo:
    """What applying an export needs to know about its tenant."""

    id: int
    name: str
    initial_domain: str
    features: Features

    @classmethod
    def of(cls, tenant: Tenant) -> TenantInfo:
        features = Features(upn_resiliency=tenant.upn_resiliency, proxy_resiliency=tenant.proxy_resiliency)
        return cls(tenant.id, tenant.name, tenant.initial_domain, features)


def current_features(connection: Connection, tenant_id: int) -> Features:
    """The tenant's features as committed now, past any cache."""
    row = connection.execute(
        select(tenants.c.upn_resiliency, tenants.c.proxy_resiliency).where(tenants.c.id == tenant_id)
    ).one()
    return Features(upn_resiliency=row.upn_resiliency, proxy_resiliency=row.proxy_resiliency)


@dataclass(slots=True)
class ObjectRow:
    """The object's row as the transaction locked it."""

    id: int
    object_id: str
    object_class: str
    upn: str | None
    wanted_upn: str | None
    wanted_proxy_addresses: list[str]
    last_sequence: int
    deleted: bool


_LOCK_OBJECT_ROW = (
    select(
        objects.c.id,
        objects.c.object_id,
        objects.c.object_class,
        objects.c.upn,
        objects.c.wanted_upn,
        objects.c.wanted_proxy_addresses,
        objects.c.last_sequence,
        objects.c.deleted,
    )
    .where(objects.c.tenant_id == bindparam("tenant_id"), objects.c.source_anchor == bindparam("source_anchor"))
    .with_for_update()
)


_LOCK_OBJECT_ROWS = (
    select(objects.c.tenant_id, objects.c.source_anchor, *_LOCK_OBJECT_ROW.selected_columns)
    .where(tuple_(objects.c.tenant_id, objects.c.source_anchor).in_(bindparam("anchors", expanding=True)))
    .with_for_update()
)


def lock_object_rows(connection: Connection, anchors: Collection[tuple[int, str]]) -> dict[tuple[int, str], ObjectRow]:
    """The rows of many objects (tenant id, source anchor) of a batch, locked in one statement."""
    if not anchors:
        return {}
    rows = connection.execute(_LOCK_OBJECT_ROWS, {"anchors": list(anchors)})
    return {(tenant_id, anchor): ObjectRow(*rest) for tenant_id, anchor, *rest in rows}


def lock_object_row(connection: Connection, tenant: TenantInfo, source_anchor: str) -> ObjectRow | None:
    """The object's row, locked in the database too: the last guard if a Redis lock expired."""
    row = connection.execute(_LOCK_OBJECT_ROW, {"tenant_id": tenant.id, "source_anchor": source_anchor}).first()
    return None if row is None else ObjectRow(*row)


@dataclass(frozen=True, slots=True)
class ObjectState:
    """What one read tells about an object: its state, who holds the values it wants, its failures."""

    current: CurrentState
    holders: dict[str, str]
    has_failures: bool


def _object_state_query(with_object: bool, with_keys: bool) -> Any:
    """The UNION read for one shape of export, built once: statements are the hot path's cost."""
    parts = [
        select(failures.c.source_anchor, literal("failure"), _NO_TEXT, _NO_TEXT, _NO_TEXT, _NO_TIME).where(
            failures.c.tenant == bindparam("tenant_name"), failures.c.source_anchor == bindparam("source_anchor")
        )
    ]
    if with_object:
        parts.append(
            select(claims.c.key, literal("held"), _NO_TEXT, _NO_TEXT, _NO_TEXT, _NO_TIME).where(
                claims.c.object_pk == bindparam("object_pk")
            )
        )
        parts.append(
            select(
                entries.c.key,
                literal("entry"),
                entries.c.property_name,
                entries.c.property_value,
                entries.c.conflicting_object_id,
                entries.c.occurred_at,
            ).where(entries.c.object_pk == bindparam("object_pk"))
        )
    if with_keys:
        parts.append(
            select(claims.c.key, literal("holder"), objects.c.object_id, _NO_TEXT, _NO_TEXT, _NO_TIME)
            .join(objects, objects.c.id == claims.c.object_pk)
            .where(claims.c.tenant_id == bindparam("tenant_id"), claims.c.key.in_(bindparam("keys", expanding=True)))
        )
    return union_all(*parts)


_OBJECT_STATE_QUERIES = {(o, k): _object_state_query(o, k) for o in (False, True) for k in (False, True)}


def read_object_state(
    connection: Connection, tenant: TenantInfo, source_anchor: str, obj: ObjectRow | None, keys: Collection[str]
) -> ObjectState:
    """In one round trip: what the object holds and waits for, who holds each of `keys`, and
    whether a failed export is on file for it (a success clears it)."""
    query = _OBJECT_STATE_QUERIES[(obj is not None, bool(keys))]
    params: dict[str, Any] = {"tenant_name": tenant.name, "source_anchor": source_anchor}
    if obj is not None:
        params["object_pk"] = obj.id
    if keys:
        params.update(tenant_id=tenant.id, keys=list(keys))
    held: set[str] = set()
    quarantines: dict[str, Quarantine] = {}
    holders: dict[str, str] = {}
    has_failures = False
    for key, kind, a, b, c, d in connection.execute(query, params):
        if kind == "held":
            held.add(key)
        elif kind == "entry":
            quarantines[key] = Quarantine(key, PropertyName(a), b, c, d)
        elif kind == "holder":
            holders[key] = a
        else:
            has_failures = True
    current = CurrentState(
        object_id=obj.object_id if obj else "",
        upn=obj.upn if obj else None,
        held=frozenset(held),
        quarantines=quarantines,
    )
    return ObjectState(current, holders, has_failures)


@dataclass(slots=True)
class BatchState:
    """What one read tells about many independent objects of a batch, each part keyed by its owner."""

    failed: set[tuple[str, str]]  # (tenant name, source anchor) with a failure on file
    held: dict[int, set[str]]  # object pk: the values it holds
    quarantines: dict[int, dict[str, Quarantine]]  # object pk: the values it waits for
    holders: dict[tuple[int, str], str]  # (tenant id, value): the objectId holding it


_BATCH_STATE_QUERY = union_all(
    select(
        literal("failure"), failures.c.tenant, failures.c.source_anchor, _NO_INT, _NO_TEXT, _NO_TEXT, _NO_TEXT, _NO_TIME
    ).where(tuple_(failures.c.tenant, failures.c.source_anchor).in_(bindparam("anchors", expanding=True))),
    select(literal("held"), claims.c.key, _NO_TEXT, claims.c.object_pk, _NO_TEXT, _NO_TEXT, _NO_TEXT, _NO_TIME).where(
        claims.c.object_pk.in_(bindparam("pks", expanding=True))
    ),
    select(
        literal("entry"),
        entries.c.key,
        entries.c.property_name,
        entries.c.object_pk,
        entries.c.property_value,
        entries.c.conflicting_object_id,
        _NO_TEXT,
        entries.c.occurred_at,
    ).where(entries.c.object_pk.in_(bindparam("pks", expanding=True))),
    select(
        literal("holder"), claims.c.key, objects.c.object_id, claims.c.tenant_id, _NO_TEXT, _NO_TEXT, _NO_TEXT, _NO_TIME
    )
    .join(objects, objects.c.id == claims.c.object_pk)
    .where(tuple_(claims.c.tenant_id, claims.c.key).in_(bindparam("values", expanding=True))),
)


def read_batch_state(
    connection: Connection,
    anchors: Collection[tuple[str, str]],
    object_pks: Collection[int],
    values: Collection[tuple[int, str]],
) -> BatchState:
    """`read_object_state` for many objects in one round trip: failures by (tenant, anchor), what
    each existing object holds and waits for, and who holds each (tenant id, value)."""
    state = BatchState(set(), {}, {}, {})
    params = {"anchors": list(anchors), "pks": list(object_pks), "values": list(values)}
    for kind, key, a, number, b, c, _, occurred in connection.execute(_BATCH_STATE_QUERY, params):
        if kind == "held":
            state.held.setdefault(number, set()).add(key)
        elif kind == "entry":
            state.quarantines.setdefault(number, {})[key] = Quarantine(key, PropertyName(a), b, c, occurred)
        elif kind == "holder":
            state.holders[(number, key)] = a
        else:
            state.failed.add((key, a))
    return state


def holders_of(connection: Connection, tenant_id: int, keys: Collection[str]) -> dict[str, str]:
    """Who holds each of `keys` now, as objectIds."""
    if not keys:
        return {}
    rows = connection.execute(
        select(claims.c.key, objects.c.object_id)
        .join(objects, objects.c.id == claims.c.object_pk)
        .where(claims.c.tenant_id == tenant_id, claims.c.key.in_(list(keys)))
    )
    return {key: object_id for key, object_id in rows}


def desired_state_of(obj: ObjectRow) -> DesiredState:
    """The desired state an object last asked for; what a release re-plans."""
    return DesiredState(
        upn=obj.wanted_upn,
        proxy_addresses=tuple(parse_proxy_address(p) for p in obj.wanted_proxy_addresses or ()),
    )


_INSERT_OBJECT = insert(objects).returning(objects.c.id)
_UPDATE_OBJECT = update(objects).where(objects.c.id == bindparam("row_id"))


def insert_object(connection: Connection, tenant: TenantInfo, source_anchor: str, values: dict[str, Any]) -> ObjectRow:
    """A new object row (or a tombstone for a delete of an unknown object)."""
    object_id = str(uuid.uuid4())
    row_id = connection.execute(
        _INSERT_OBJECT, {"tenant_id": tenant.id, "source_anchor": source_anchor, "object_id": object_id, **values}
    ).scalar_one()
    return _new_row(row_id, object_id, values)


def _new_row(row_id: int, object_id: str, values: dict[str, Any]) -> ObjectRow:
    """The row just inserted with `values`, as a read would give it: no effective UPN yet."""
    return ObjectRow(
        id=row_id,
        object_id=object_id,
        object_class=values["object_class"],
        upn=None,
        wanted_upn=values.get("wanted_upn"),
        wanted_proxy_addresses=values.get("wanted_proxy_addresses", []),
        last_sequence=values["last_sequence"],
        deleted=values.get("deleted", False),
    )


# Many new objects in one statement whose text does not change with the number of rows, the rows as
# one JSON document (`jsonb_to_recordset`). Measured with py-spy in the pool processes: SQLAlchemy's
# multi-row INSERT ... VALUES was 31 % of a batch of 4,000 small new users, half of it psycopg
# converting a query text that differed with every batch size; then, with one array parameter per
# column, 21 % of an initial load's batch went to psycopg escaping each 1 KB attributes element of a
# text array in Python. One json.dumps of the batch costs a fraction of either.
_OBJECT_COLUMNS = {
    "tenant_id": "bigint",
    "source_anchor": "text",
    "object_id": "text",
    "object_class": "text",
    "display_name": "text",
    "wanted_upn": "text",
    "upn": "text",
    "wanted_proxy_addresses": "jsonb",
    "proxy_addresses": "jsonb",
    "attributes": "jsonb",
    "last_sequence": "bigint",
    "deleted": "boolean",
    "updated_at": "timestamptz",
}
_INSERT_OBJECTS = text(
    f"""
    INSERT INTO {objects.name} ({", ".join(_OBJECT_COLUMNS)})
    SELECT {", ".join(f"n.{c}" for c in _OBJECT_COLUMNS)}
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS n({", ".join(f"{c} {t}" for c, t in _OBJECT_COLUMNS.items())})
    RETURNING id, tenant_id, source_anchor
    """
)


def insert_objects(connection: Connection, rows: list[tuple[TenantInfo, str, dict[str, Any]]]) -> list[ObjectRow]:
    """Many new object rows (tenant, source anchor, values) in one PostgreSQL statement; the rows
    come back in the order given."""
    if not rows:
        return []
    params = [
        {"tenant_id": tenant.id, "source_anchor": anchor, "object_id": str(uuid.uuid4()), **values}
        for tenant, anchor, values in rows
    ]
    document = json.dumps(
        [{column: p[column] for column in _OBJECT_COLUMNS} for p in params], ensure_ascii=False, default=_iso
    )
    ids = {
        (tenant_id, anchor): row_id
        for row_id, tenant_id, anchor in connection.execute(_INSERT_OBJECTS, {"rows": document})
    }
    return [_new_row(ids[(p["tenant_id"], p["source_anchor"])], p["object_id"], p) for p in params]


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def update_object(connection: Connection, obj: ObjectRow, values: dict[str, Any]) -> None:
    """SET takes the columns named in `values`; the statement itself is built once."""
    connection.execute(_UPDATE_OBJECT, {"row_id": obj.id, **values})
