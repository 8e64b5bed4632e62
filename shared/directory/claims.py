"""Claims (who holds a value) and provisioning-error entries (who waits for one), written in one round trip.

The claims table's primary key is the final uniqueness guard: a claim that loses a race raises
`ClaimTaken` and the export is applied again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    delete,
    insert,
    literal,
    select,
    text,
)

from shared.core.decision import CurrentState, DesiredState, ExportPlan, Quarantine
from shared.core.history import conflict_changes
from shared.core.values import value_key
from shared.directory.history import change_rows, record_changes
from shared.directory.objects import ObjectRow, TenantInfo
from shared.directory.placeholders import mint_placeholder
from shared.store.tables import (
    claims,
    entries,
    objects,
)


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

# An entry carries its object's class (the Graph face counts any() over the errors from one index),
# read from the object's row in this transaction: a tombstone re-created as another class has the new
# class there, while the `ObjectRow` locked before the update still has the old one.
_OBJECT_CLASS_SQL = f"(SELECT object_class FROM {objects.name} WHERE id = :object_pk)"
_INSERT_ENTRIES = insert(entries).values(
    object_class=select(objects.c.object_class).where(objects.c.id == bindparam("class_of")).scalar_subquery()
)

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
        INSERT INTO {entries.name} (tenant_id, object_pk, object_class, category, {", ".join(_ENTRY_ARRAYS)})
        SELECT :tenant_id, :object_pk, {_OBJECT_CLASS_SQL}, 'PropertyConflict', e.*
        FROM unnest({", ".join(f"CAST(:entry_{c} AS {t}[])" for c, t in _ENTRY_ARRAYS.items())})
            AS e({", ".join(_ENTRY_ARRAYS)})
    )
    INSERT INTO {claims.name} (tenant_id, key, object_pk, claimed_at)
    SELECT :tenant_id, claimed.key, :object_pk, :now FROM unnest(CAST(:claim_keys AS text[])) AS claimed(key)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING key
    """
)


# The claims and new entries of many independent objects of a batch in one PostgreSQL statement, as
# `_CLAIM_AND_ENTER` does for one: each row names its tenant and object, each entry takes its class
# from its object's row (written earlier in this transaction).
_CLAIM_AND_ENTER_MANY = text(
    f"""
    WITH entered AS (
        INSERT INTO {entries.name} (tenant_id, object_pk, object_class, category, {", ".join(_ENTRY_ARRAYS)})
        SELECT e.tenant_id, e.object_pk, o.object_class, 'PropertyConflict', {", ".join(f"e.{c}" for c in _ENTRY_ARRAYS)}
        FROM unnest(CAST(:entry_tenant_id AS bigint[]), CAST(:entry_object_pk AS bigint[]),
            {", ".join(f"CAST(:entry_{c} AS {t}[])" for c, t in _ENTRY_ARRAYS.items())})
            AS e(tenant_id, object_pk, {", ".join(_ENTRY_ARRAYS)})
        JOIN {objects.name} AS o ON o.id = e.object_pk
    )
    INSERT INTO {claims.name} (tenant_id, key, object_pk, claimed_at)
    SELECT c.tenant_id, c.key, c.object_pk, :now
    FROM unnest(CAST(:claim_tenant_id AS bigint[]), CAST(:claim_key AS text[]), CAST(:claim_object_pk AS bigint[]))
        AS c(tenant_id, key, object_pk)
    ON CONFLICT (tenant_id, key) DO NOTHING
    RETURNING object_pk, key
    """
)


def claim_values_many(
    connection: Connection,
    claimed: list[tuple[TenantInfo, ObjectRow, Collection[str]]],
    opened: list[tuple[TenantInfo, ObjectRow, list[Quarantine]]],
    now: datetime,
) -> dict[int, set[str]]:
    """`claim_values` for many independent objects in one PostgreSQL statement, with their new
    entries; returns, by object pk, the values somebody else already held (not claimed)."""
    claims_rows = [(tenant.id, key, obj.id) for tenant, obj, keys in claimed for key in sorted(keys)]
    entry_rows = [row for tenant, obj, quarantines in opened for row in _entry_rows(tenant, obj, quarantines)]
    params: dict[str, Any] = {
        "now": now,
        "claim_tenant_id": [t for t, _, _ in claims_rows],
        "claim_key": [k for _, k, _ in claims_rows],
        "claim_object_pk": [o for _, _, o in claims_rows],
        "entry_tenant_id": [row["tenant_id"] for row in entry_rows],
        "entry_object_pk": [row["object_pk"] for row in entry_rows],
        **{f"entry_{column}": [row[column] for row in entry_rows] for column in _ENTRY_ARRAYS},
    }
    inserted = {(object_pk, key) for object_pk, key in connection.execute(_CLAIM_AND_ENTER_MANY, params)}
    return {obj.id: {key for key in keys if (obj.id, key) not in inserted} for _, obj, keys in claimed}


# A plan's released claims and closed entries, and which released values others wait for, in one
# PostgreSQL statement: a release in the sweep paid three round trips for these. The waiters are read
# from the statement's snapshot, so the object's own entries (closed here, none on a value it held)
# are left out by their object_pk.
_RELEASE_AND_CLOSE = text(
    f"""
    WITH released AS (
        DELETE FROM {claims.name} WHERE object_pk = :object_pk AND key = ANY(CAST(:release AS text[]))
    ), closed AS (
        DELETE FROM {entries.name} WHERE object_pk = :object_pk AND key = ANY(CAST(:close AS text[]))
    )
    SELECT DISTINCT waiting.key FROM {entries.name} AS waiting
    WHERE waiting.tenant_id = :tenant_id AND waiting.object_pk <> :object_pk
        AND waiting.key = ANY(CAST(:release AS text[]))
    ORDER BY waiting.key
    """
)


@dataclass(frozen=True, slots=True)
class ClaimsWritten:
    """What writing a plan's claims came to: the UPN the object ends with, and the values it let go
    of that another object waits for (the fast path releases them after commit)."""

    upn: str | None
    freed_with_waiters: tuple[str, ...]


def claim_values(
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
            connection.execute(_INSERT_ENTRIES, entry_rows)
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
    sequence: int,
) -> ClaimsWritten:
    """Make the object's claims and `dirSyncProvisioningErrors` entries match `plan`, and write the
    conflicts it opens and ends to their history (as made by the object's export `sequence`).

    The UPN it ends with is `upn`, unless that is a proposed placeholder somebody holds, which is
    replaced by a free one (the caller writes it to the object's row).
    """
    record_changes(connection, change_rows(tenant.id, obj.id, sequence, conflict_changes(current, plan), now))
    claim = set(plan.claim)
    placeholder = value_key(upn) if plan.needs_placeholder and upn is not None else None
    if placeholder is not None:
        claim.add(placeholder)
    freed = release_and_close(connection, tenant, obj, plan)
    entry_rows = _entry_rows(tenant, obj, [q for q in plan.open_quarantines if current.quarantines.get(q.key) != q])
    if not claim:
        if entry_rows:
            connection.execute(_INSERT_ENTRIES, entry_rows)
        return ClaimsWritten(upn, freed)
    held_elsewhere = claim_values(connection, tenant, obj, claim, now, entry_rows)
    if held_elsewhere - {placeholder}:
        raise ClaimTaken(f"{sorted(held_elsewhere - {placeholder})} were claimed by another object meanwhile")
    if held_elsewhere and desired.upn is not None:
        upn = mint_placeholder(connection, tenant, desired.upn, avoid={*desired.wanted(), *held_elsewhere})
        if claim_values(connection, tenant, obj, {value_key(upn)}, now):
            raise ClaimTaken(f"placeholder {upn!r} was claimed by another object meanwhile")
    return ClaimsWritten(upn, freed)


def release_and_close(connection: Connection, tenant: TenantInfo, obj: ObjectRow, plan: ExportPlan) -> tuple[str, ...]:
    """Delete the released claims and the closed entries (closed first: a replaced entry makes way for
    its successor); returns the released values others wait for."""
    if not (plan.release or plan.close_quarantines):
        return ()
    if connection.dialect.name == "postgresql":
        params = {
            "tenant_id": tenant.id,
            "object_pk": obj.id,
            "release": sorted(plan.release),
            "close": sorted(plan.close_quarantines),
        }
        return tuple(connection.scalars(_RELEASE_AND_CLOSE, params))
    if plan.release:
        connection.execute(delete(claims).where(claims.c.object_pk == obj.id, claims.c.key.in_(list(plan.release))))
    if plan.close_quarantines:
        connection.execute(
            delete(entries).where(entries.c.object_pk == obj.id, entries.c.key.in_(list(plan.close_quarantines)))
        )
    return tuple(keys_with_waiters(connection, tenant.id, plan.release))


def _entry_rows(tenant: TenantInfo, obj: ObjectRow, opened: list[Quarantine]) -> list[dict[str, Any]]:
    return [
        {
            "tenant_id": tenant.id,
            "object_pk": obj.id,
            "class_of": obj.id,
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
