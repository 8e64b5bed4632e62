"""One conflict with both its objects: the waiter, the entry it carries, and whoever holds the value now.

The web report shows the two side by side. Whoever holds the value is read from the claim, not from
the entry's stored `conflicting_object_id`, which goes stale when a holder lets go and the next
waiter takes over; the claim also says since when the holder has had it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, false, select
from sqlalchemy.orm import Session

from shared.core.values import InvalidValue, parse_proxy_address, value_key
from shared.queries.provisioning_errors import property_value_key
from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError, Tenant


@dataclass(frozen=True, slots=True)
class ShownValue:
    """A UPN or proxy address as one side shows it; `contested` when it is the value in dispute."""

    text: str
    contested: bool


@dataclass(frozen=True, slots=True)
class PairSide:
    """One object of the pair: its effective (cloud) values, and what it asked for."""

    object_pk: int
    object_id: str
    source_anchor: str
    object_type: str
    display_name: str | None
    user_principal_name: ShownValue | None
    proxy_addresses: tuple[ShownValue, ...]
    wanted_user_principal_name: ShownValue | None
    wanted_proxy_addresses: tuple[ShownValue, ...]


@dataclass(frozen=True, slots=True)
class ConflictPair:
    """The waiter and the entry it carries for `key`, with the holder (None: nobody holds it now)."""

    key: str
    waiter: PairSide
    property_name: str | None  # None with `entry_open` false: the entry is gone, the history says why
    property_value: str | None
    asked_at: datetime | None  # the entry's occurred_at
    reported_at: datetime | None
    named_holder_object_id: str | None  # what the entry names (stale once the holder let go)
    holder: PairSide | None
    held_since: datetime | None  # the holder's claimed_at

    @property
    def entry_open(self) -> bool:
        return self.asked_at is not None


def contested_key(property_value: str) -> str | None:
    """The namespace key a conflict over `property_value` is filed under (a UPN, or an SMTP address)."""
    return property_value_key(property_value)


def _upn_key(upn: str) -> str:
    return value_key(upn)


def _proxy_key(raw: str) -> str | None:
    try:
        proxy = parse_proxy_address(raw)
    except InvalidValue:
        return None
    return proxy.key if proxy.is_smtp else None


def _shown_upn(upn: str | None, key: str) -> ShownValue | None:
    return ShownValue(upn, _upn_key(upn) == key) if upn else None


def _shown_proxies(addresses: list[str] | None, key: str) -> tuple[ShownValue, ...]:
    return tuple(ShownValue(a, _proxy_key(a) == key) for a in addresses or ())


def _side(obj: DirectoryObject, key: str) -> PairSide:
    return PairSide(
        object_pk=obj.id,
        object_id=obj.object_id,
        source_anchor=obj.source_anchor,
        object_type=obj.object_class,
        display_name=obj.display_name,
        user_principal_name=_shown_upn(obj.upn, key),
        proxy_addresses=_shown_proxies(obj.proxy_addresses, key),
        wanted_user_principal_name=_shown_upn(obj.wanted_upn, key) if obj.object_class == "User" else None,
        wanted_proxy_addresses=_shown_proxies(obj.wanted_proxy_addresses, key),
    )


def conflict_pair(session: Session, tenant: Tenant, source_anchor: str, key: str) -> ConflictPair | None:
    """The conflict of the live object `source_anchor` over `key`; None when there is no such object.

    With the object there but its entry gone (the conflict ended), the pair has no entry and no
    holder: the conflict's history tells what happened.
    """
    waiter = session.scalars(
        select(DirectoryObject).where(
            DirectoryObject.tenant_id == tenant.id,
            DirectoryObject.source_anchor == source_anchor,
            DirectoryObject.deleted.is_(false()),
        )
    ).first()
    if waiter is None:
        return None
    entry = session.scalars(
        select(ProvisioningError).where(ProvisioningError.object_pk == waiter.id, ProvisioningError.key == key)
    ).first()
    holder: DirectoryObject | None = None
    held_since: datetime | None = None
    if entry is not None:
        found = session.execute(
            select(DirectoryObject, ClaimedValue.claimed_at)
            .join(ClaimedValue, ClaimedValue.object_pk == DirectoryObject.id)
            .where(
                and_(ClaimedValue.tenant_id == tenant.id, ClaimedValue.key == key),
                DirectoryObject.deleted.is_(false()),
                DirectoryObject.id != waiter.id,
            )
        ).first()
        if found is not None:
            holder, held_since = found[0], found[1]
    return ConflictPair(
        key=key,
        waiter=_side(waiter, key),
        property_name=entry.property_name if entry else None,
        property_value=entry.property_value if entry else None,
        asked_at=entry.occurred_at if entry else None,
        reported_at=entry.reported_at if entry else None,
        named_holder_object_id=entry.conflicting_object_id if entry else None,
        holder=_side(holder, key) if holder is not None else None,
        held_since=held_since,
    )
