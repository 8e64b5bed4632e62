"""Reads and writes of the directory store that one export or release needs, inside its transaction."""

from __future__ import annotations

import random
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.decision import (
    CurrentState,
    DesiredState,
    ExportPlan,
    Features,
    PropertyName,
    Quarantine,
)
from shared.models import ClaimedValue, DirectoryObject, ProvisioningError, Tenant
from shared.schemas import Export
from shared.values import parse_proxy_address, placeholder_upn, value_key


class PlaceholdersExhausted(RuntimeError):
    """Every `prefix+NNNN` for one prefix is taken: an operator has to look."""


def features_of(tenant: Tenant) -> Features:
    return Features(upn_resiliency=tenant.upn_resiliency, proxy_resiliency=tenant.proxy_resiliency)


def held_keys_by_anchor(session: Session, tenant_id: int, source_anchor: str) -> set[str]:
    """The values an object holds, read before locking so the lock set can include them."""
    rows = session.execute(
        select(ClaimedValue.key)
        .join(DirectoryObject, DirectoryObject.id == ClaimedValue.object_pk)
        .where(DirectoryObject.tenant_id == tenant_id, DirectoryObject.source_anchor == source_anchor)
    )
    return {key for (key,) in rows}


def lock_object_row(session: Session, tenant_id: int, source_anchor: str) -> DirectoryObject | None:
    """The object's row, locked in the database too: the last guard if a Redis lock expired."""
    return session.scalars(
        select(DirectoryObject)
        .where(DirectoryObject.tenant_id == tenant_id, DirectoryObject.source_anchor == source_anchor)
        .with_for_update()
    ).first()


def load_current_state(session: Session, obj: DirectoryObject) -> CurrentState:
    held = set(session.scalars(select(ClaimedValue.key).where(ClaimedValue.object_pk == obj.id)))
    quarantines = {
        row.key: Quarantine(
            key=row.key,
            property_name=PropertyName(row.property_name),
            value=row.property_value,
            conflicting_object_id=row.conflicting_object_id,
            occurred=row.occurred_at,
        )
        for row in session.scalars(select(ProvisioningError).where(ProvisioningError.object_pk == obj.id))
    }
    return CurrentState(object_id=obj.object_id, upn=obj.upn, held=frozenset(held), quarantines=quarantines)


def holders_of(session: Session, tenant_id: int, keys: Collection[str]) -> dict[str, str]:
    """Who holds each of `keys` now, as objectIds."""
    if not keys:
        return {}
    rows = session.execute(
        select(ClaimedValue.key, DirectoryObject.object_id)
        .join(DirectoryObject, DirectoryObject.id == ClaimedValue.object_pk)
        .where(ClaimedValue.tenant_id == tenant_id, ClaimedValue.key.in_(list(keys)))
    )
    return {key: object_id for key, object_id in rows}


def desired_state_of(obj: DirectoryObject) -> DesiredState:
    """The desired state an object last asked for; what a release re-plans."""
    return DesiredState(
        upn=obj.wanted_upn,
        proxy_addresses=tuple(parse_proxy_address(p) for p in obj.wanted_proxy_addresses or ()),
    )


def new_object(session: Session, tenant: Tenant, export: Export) -> DirectoryObject:
    obj = DirectoryObject(
        tenant_id=tenant.id,
        source_anchor=export.source_anchor,
        object_id=str(uuid.uuid4()),
        object_class=export.object_class.value,
        wanted_proxy_addresses=[],
        proxy_addresses=[],
        attributes={},
        last_sequence=export.sequence,
        deleted=False,
    )
    session.add(obj)
    session.flush()
    return obj


def mint_placeholder(session: Session, tenant: Tenant, wanted_upn: str, avoid: Collection[str]) -> str:
    """A free `<prefix>+<4 digits>@<initial domain>`; the primary key catches a rare race."""
    digits = list(range(10_000))
    random.shuffle(digits)
    for start in range(0, len(digits), 32):
        candidates = {placeholder_upn(wanted_upn, d, tenant.initial_domain): None for d in digits[start : start + 32]}
        keys = {value_key(c): c for c in candidates}
        taken = set(holders_of(session, tenant.id, keys)) | set(avoid)
        for key, candidate in keys.items():
            if key not in taken:
                return candidate
    raise PlaceholdersExhausted(f"all 10,000 placeholders for {wanted_upn!r} in {tenant.initial_domain} are taken")


def write_plan(
    session: Session,
    tenant: Tenant,
    obj: DirectoryObject,
    desired: DesiredState,
    current: CurrentState,
    plan: ExportPlan,
) -> str | None:
    """Make the store match `plan`; return the effective UPN (a new placeholder is minted here)."""
    upn = plan.upn
    claim = set(plan.claim)
    if plan.needs_placeholder and desired.upn is not None:
        upn = mint_placeholder(session, tenant, desired.upn, avoid=set(desired.wanted()))
        claim.add(value_key(upn))
    if plan.release:
        session.execute(
            delete(ClaimedValue).where(ClaimedValue.object_pk == obj.id, ClaimedValue.key.in_(list(plan.release)))
        )
    if claim:
        session.add_all(ClaimedValue(tenant_id=tenant.id, key=k, object_pk=obj.id) for k in sorted(claim))
    if plan.close_quarantines:
        session.execute(
            delete(ProvisioningError).where(
                ProvisioningError.object_pk == obj.id, ProvisioningError.key.in_(list(plan.close_quarantines))
            )
        )
    new_entries = [q for q in plan.open_quarantines if current.quarantines.get(q.key) != q]
    session.add_all(
        ProvisioningError(
            tenant_id=tenant.id,
            object_pk=obj.id,
            key=q.key,
            property_name=q.property_name.value,
            property_value=q.value,
            conflicting_object_id=q.conflicting_object_id,
            occurred_at=q.occurred,
        )
        for q in new_entries
    )
    obj.upn = upn
    obj.proxy_addresses = list(plan.proxy_addresses)
    session.flush()
    return upn


def keys_with_waiters(session: Session, tenant_id: int, keys: Collection[str]) -> list[str]:
    """Of the values just freed, those another object waits for: the fast path releases them."""
    if not keys:
        return []
    rows = session.scalars(
        select(ProvisioningError.key)
        .where(ProvisioningError.tenant_id == tenant_id, ProvisioningError.key.in_(list(keys)))
        .distinct()
    )
    return sorted(rows)


def mark_deleted(session: Session, obj: DirectoryObject, sequence: int, now: datetime) -> None:
    session.execute(
        update(DirectoryObject)
        .where(DirectoryObject.id == obj.id)
        .values(
            deleted=True,
            upn=None,
            wanted_upn=None,
            proxy_addresses=[],
            wanted_proxy_addresses=[],
            last_sequence=sequence,
            updated_at=now,
        )
    )
