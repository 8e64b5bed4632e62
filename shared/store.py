"""Reads and writes of the directory store that one export or release needs, inside its transaction.

SQLAlchemy Core on one connection, not the ORM: this is the hot path, and every statement here is one
round trip that the plan actually needs. An export of a new object costs four, conflict or not: lock
its row, read its state, insert it, and claim its values (with its new entries, on PostgreSQL).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    and_,
    bindparam,
    cast,
    delete,
    insert,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)

from shared.decision import CurrentState, DesiredState, ExportPlan, Features, PropertyName, Quarantine
from shared.failures import sequence_of
from shared.models import ClaimedValue, DirectoryObject, FailedExport, ProvisioningError, Tenant
from shared.values import parse_proxy_address, placeholder_upn, value_key

objects = DirectoryObject.__table__
claims = ClaimedValue.__table__
entries = ProvisioningError.__table__
failures = FailedExport.__table__
tenants = Tenant.__table__

# Typed NULLs for the padded columns of the one-round-trip UNION below (PostgreSQL wants them typed).
_NO_TEXT = cast(null(), String())
_NO_TIME = cast(null(), DateTime(timezone=True))


class PlaceholdersExhausted(RuntimeError):
    """Every `prefix+NNNN` for one prefix is taken: an operator has to look."""


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


def update_object(connection: Connection, obj: ObjectRow, values: dict[str, Any]) -> None:
    """SET takes the columns named in `values`; the statement itself is built once."""
    connection.execute(_UPDATE_OBJECT, {"row_id": obj.id, **values})


_PLACEHOLDER_DIGITS = 10_000
_PLACEHOLDER_BATCH = 32


def _placeholder_digit_batches() -> Iterator[list[int]]:
    """Random 4-digit suffixes, 32 at a time, each tried once: a random 32 first (almost always
    enough), and only when all of those are taken a shuffle of the rest, so the common case costs
    a 32-number draw rather than a 10,000-number permutation."""
    first = random.sample(range(_PLACEHOLDER_DIGITS), _PLACEHOLDER_BATCH)
    yield first
    tried = set(first)
    rest = [d for d in range(_PLACEHOLDER_DIGITS) if d not in tried]
    random.shuffle(rest)
    for start in range(0, len(rest), _PLACEHOLDER_BATCH):
        yield rest[start : start + _PLACEHOLDER_BATCH]


def claimed_keys(connection: Connection, tenant_id: int, keys: Collection[str]) -> set[str]:
    """Which of `keys` somebody holds."""
    rows = connection.execute(select(claims.c.key).where(claims.c.tenant_id == tenant_id, claims.c.key.in_(list(keys))))
    return {key for (key,) in rows}


def mint_placeholder(connection: Connection, tenant: TenantInfo, wanted_upn: str, avoid: Collection[str]) -> str:
    """A free `<prefix>+<4 digits>@<initial domain>`; the primary key catches a rare race."""
    for digits in _placeholder_digit_batches():
        candidates = {value_key(c): c for c in (placeholder_upn(wanted_upn, d, tenant.initial_domain) for d in digits)}
        taken = claimed_keys(connection, tenant.id, candidates) | set(avoid)
        for key, candidate in candidates.items():
            if key not in taken:
                return candidate
    raise PlaceholdersExhausted(f"all 10,000 placeholders for {wanted_upn!r} in {tenant.initial_domain} are taken")


def effective_upn(tenant: TenantInfo, desired: DesiredState, plan: ExportPlan) -> str | None:
    """The UPN the object shows: the one the plan decided, or a random placeholder proposed now.

    A proposal is not looked up: the claim's insert finds out whether it is free, and in the rare
    case it is not, `write_claims_and_entries` mints one that is (one more round trip then).
    """
    if plan.needs_placeholder and desired.upn is not None:
        avoid = set(desired.wanted())
        for digits in random.sample(range(_PLACEHOLDER_DIGITS), 4):
            proposal = placeholder_upn(desired.upn, digits, tenant.initial_domain)
            if value_key(proposal) not in avoid:
                return proposal
    return plan.upn


class ClaimTaken(Exception):
    """A value this export decided to claim is held after all (a lock expired under it): start over."""


def _insert_claims_statement(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING key: which of the claims were free, in one round trip."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert_for(claims)
        .on_conflict_do_nothing(index_elements=[claims.c.tenant_id, claims.c.key])
        .returning(claims.c.key)
    )


_INSERT_CLAIMS = {dialect: _insert_claims_statement(dialect) for dialect in ("postgresql", "sqlite")}

# The claims and the new entries of one object in one PostgreSQL statement (the entries as a
# data-modifying CTE), one array parameter per entry column. Plain SQL because it is then built
# once: the same thing as a Core multi-row INSERT ... VALUES is compiled anew on every call, which
# cost a conflicting export about 1 ms of Python.
_ENTRY_ARRAYS = {
    "key": "text",
    "property_name": "text",
    "property_value": "text",
    "conflicting_object_id": "text",
    "occurred_at": "timestamptz",
}
_CLAIM_AND_ENTER = text(
    f"""
    WITH entered AS (
        INSERT INTO {entries.name} (tenant_id, object_pk, category, {", ".join(_ENTRY_ARRAYS)})
        SELECT :tenant_id, :object_pk, 'PropertyConflict', e.*
        FROM unnest({", ".join(f"CAST(:entry_{c} AS {t}[])" for c, t in _ENTRY_ARRAYS.items())})
            AS e({", ".join(_ENTRY_ARRAYS)})
    )
    INSERT INTO {claims.name} (tenant_id, key, object_pk, claimed_at)
    SELECT :tenant_id, claimed.key, :object_pk, :now FROM unnest(CAST(:claim_keys AS text[])) AS claimed(key)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING key
    """
)


def _claim(
    connection: Connection,
    tenant: TenantInfo,
    obj: ObjectRow,
    keys: Collection[str],
    now: datetime,
    entry_rows: list[dict[str, Any]] | None = None,
) -> set[str]:
    """Claim `keys` for `obj`; returns those somebody else already held (and so were not claimed).

    On PostgreSQL, `entry_rows` (new `dirSyncProvisioningErrors` entries) ride in the same
    statement as a data-modifying CTE, so a quarantine costs no round trip of its own.
    """
    if entry_rows and connection.dialect.name == "postgresql":
        params = {
            "tenant_id": tenant.id,
            "object_pk": obj.id,
            "now": now,
            "claim_keys": sorted(keys),
            **{f"entry_{column}": [row[column] for row in entry_rows] for column in _ENTRY_ARRAYS},
        }
        inserted = set(connection.scalars(_CLAIM_AND_ENTER, params))
    else:
        rows = [{"tenant_id": tenant.id, "key": k, "object_pk": obj.id, "claimed_at": now} for k in sorted(keys)]
        inserted = set(connection.scalars(_INSERT_CLAIMS[connection.dialect.name], rows))
        if entry_rows:
            connection.execute(insert(entries), entry_rows)
    return set(keys) - inserted


def write_claims_and_entries(
    connection: Connection,
    tenant: TenantInfo,
    obj: ObjectRow,
    current: CurrentState,
    plan: ExportPlan,
    desired: DesiredState,
    upn: str | None,
    now: datetime,
) -> str | None:
    """Make the object's claims and `dirSyncProvisioningErrors` entries match `plan`.

    Returns the UPN the object ends with: `upn`, unless it is a proposed placeholder somebody
    holds, which is replaced by a free one (the caller writes it to the object's row).
    """
    claim = set(plan.claim)
    placeholder = value_key(upn) if plan.needs_placeholder and upn is not None else None
    if placeholder is not None:
        claim.add(placeholder)
    if plan.release:
        connection.execute(delete(claims).where(claims.c.object_pk == obj.id, claims.c.key.in_(list(plan.release))))
    if plan.close_quarantines:  # first: a replaced entry makes way for its successor
        connection.execute(
            delete(entries).where(entries.c.object_pk == obj.id, entries.c.key.in_(list(plan.close_quarantines)))
        )
    entry_rows = _entry_rows(tenant, obj, [q for q in plan.open_quarantines if current.quarantines.get(q.key) != q])
    if not claim:
        if entry_rows:
            connection.execute(insert(entries), entry_rows)
        return upn
    held_elsewhere = _claim(connection, tenant, obj, claim, now, entry_rows)
    if held_elsewhere - {placeholder}:
        raise ClaimTaken(f"{sorted(held_elsewhere - {placeholder})} were claimed by another object meanwhile")
    if held_elsewhere and desired.upn is not None:
        upn = mint_placeholder(connection, tenant, desired.upn, avoid={*desired.wanted(), *held_elsewhere})
        if _claim(connection, tenant, obj, {value_key(upn)}, now):
            raise ClaimTaken(f"placeholder {upn!r} was claimed by another object meanwhile")
    return upn


def _entry_rows(tenant: TenantInfo, obj: ObjectRow, opened: list[Quarantine]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant.id,
            "object_pk": obj.id,
            "key": q.key,
            "category": "PropertyConflict",
            "property_name": q.property_name.value,
            "property_value": q.value,
            "conflicting_object_id": q.conflicting_object_id,
            "occurred_at": q.occurred,
            "reported_at": None,
        }
        for q in opened
    ]


def keys_with_waiters(connection: Connection, tenant_id: int, keys: Collection[str]) -> list[str]:
    """Of the values just freed, those another object waits for: the fast path releases them."""
    if not keys:
        return []
    rows = connection.scalars(
        select(entries.c.key).where(entries.c.tenant_id == tenant_id, entries.c.key.in_(list(keys))).distinct()
    )
    return sorted(rows)


def earliest_waiter_anchor(connection: Connection, tenant_id: int, key: str) -> str | None:
    """The source anchor of the object that has waited longest for `key`."""
    return connection.scalar(
        select(objects.c.source_anchor)
        .join(entries, entries.c.object_pk == objects.c.id)
        .where(entries.c.tenant_id == tenant_id, entries.c.key == key)
        .order_by(entries.c.occurred_at, entries.c.id)
        .limit(1)
    )


def is_held(connection: Connection, tenant_id: int, key: str) -> bool:
    return (
        connection.scalar(select(literal(1)).where(and_(claims.c.tenant_id == tenant_id, claims.c.key == key)))
        is not None
    )


def clear_failures(connection: Connection, tenant: str, source_anchor: str, applied_sequence: int) -> None:
    """A successful export of the object ends the failures it supersedes: they leave the report.

    A failure of a *newer* export stays: an older export applied late (out of order) does not put
    the object in the state the failed one asked for, and its message is the one to send again.
    """
    filed = connection.execute(
        select(failures.c.id, failures.c.raw).where(
            failures.c.tenant == tenant, failures.c.source_anchor == source_anchor
        )
    ).all()
    superseded = [row.id for row in filed if (sequence_of(row.raw) or 0) <= applied_sequence]
    if superseded:
        connection.execute(delete(failures).where(failures.c.id.in_(superseded)))
