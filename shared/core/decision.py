"""What an export claims, quarantines and releases: a pure function of plain data.

No Celery, Redis or SQL here. The caller reads the current state under the value locks,
asks `plan_export` what to do, and writes the plan in one transaction. The same function
serves the release of a waiting object: re-planning its desired state once the value is free
gives it the value back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from shared.core.values import ProxyAddress, is_placeholder_for, value_key


class PropertyName(StrEnum):
    USER_PRINCIPAL_NAME = "UserPrincipalName"
    PROXY_ADDRESSES = "ProxyAddresses"


@dataclass(frozen=True, slots=True)
class Features:
    """A tenant's resiliency switches; off means the legacy all-or-nothing behaviour."""

    upn_resiliency: bool = True
    proxy_resiliency: bool = True

    def resilient_for(self, prop: PropertyName) -> bool:
        return self.upn_resiliency if prop is PropertyName.USER_PRINCIPAL_NAME else self.proxy_resiliency


@dataclass(frozen=True, slots=True)
class Quarantine:
    """One `dirSyncProvisioningErrors` entry: a value this object asks for and another holds."""

    key: str
    property_name: PropertyName
    value: str
    conflicting_object_id: str
    occurred: datetime


@dataclass(frozen=True, slots=True)
class DesiredState:
    """What the export asks for: the wanted UPN and the proxy addresses as given."""

    upn: str | None = None
    proxy_addresses: tuple[ProxyAddress, ...] = ()

    def wanted(self) -> dict[str, tuple[PropertyName, str]]:
        """Every namespace key asked for, with the property that names it in an entry.

        A value that is both the UPN and a proxy address gets one entry, named after the UPN.
        """
        keys: dict[str, tuple[PropertyName, str]] = {}
        if self.upn:
            keys[value_key(self.upn)] = (PropertyName.USER_PRINCIPAL_NAME, self.upn)
        for proxy in self.proxy_addresses:
            if proxy.is_smtp and proxy.key not in keys:
                keys[proxy.key] = (PropertyName.PROXY_ADDRESSES, proxy.raw)
        return keys


@dataclass(frozen=True, slots=True)
class CurrentState:
    """What the store holds for the object now."""

    object_id: str
    upn: str | None = None
    held: frozenset[str] = frozenset()
    quarantines: Mapping[str, Quarantine] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conflict:
    key: str
    property_name: PropertyName
    value: str
    holder: str


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """The writes that make the object's effective state match its desired state."""

    upn: str | None
    needs_placeholder: bool
    proxy_addresses: tuple[str, ...]
    claim: frozenset[str]
    release: frozenset[str]
    open_quarantines: tuple[Quarantine, ...]
    close_quarantines: frozenset[str]

    @property
    def quarantined(self) -> frozenset[str]:
        return frozenset(q.key for q in self.open_quarantines)


@dataclass(frozen=True, slots=True)
class LegacyRejection:
    """A conflict on an attribute whose resiliency is off: the whole export fails."""

    conflicts: tuple[Conflict, ...]


def plan_export(
    desired: DesiredState,
    current: CurrentState,
    holders: Mapping[str, str],
    features: Features,
    now: datetime,
) -> ExportPlan | LegacyRejection:
    """Decide claims, quarantines and releases for one object.

    `holders` maps each namespace key involved to the object holding it (absent: free).
    Only the first holder keeps a value; a newcomer's conflicting value is quarantined,
    or rejects the export where the tenant's feature for that attribute is off.
    """
    me = current.object_id
    wanted = desired.wanted()
    conflicts = [
        Conflict(key, prop, value, holders[key]) for key, (prop, value) in wanted.items() if holders.get(key, me) != me
    ]
    legacy = tuple(c for c in conflicts if not features.resilient_for(c.property_name))
    if legacy:
        return LegacyRejection(legacy)

    conflicted = {c.key for c in conflicts}
    claimed = frozenset(wanted) - conflicted
    opened: list[Quarantine] = []
    replaced: set[str] = set()
    for c in conflicts:
        existing = current.quarantines.get(c.key)
        if existing is not None and existing.property_name is c.property_name:
            opened.append(existing)  # keeps its time, so it is not reported again
        else:
            opened.append(Quarantine(c.key, c.property_name, c.value, c.holder, now))
            if existing is not None:
                replaced.add(c.key)

    upn = desired.upn
    needs_placeholder = False
    keep = set(claimed)
    if upn is not None and value_key(upn) in conflicted:
        if current.upn is not None and value_key(current.upn) in current.held and _is_own_placeholder(current.upn, upn):
            upn = current.upn
            keep.add(value_key(upn))
        else:
            upn, needs_placeholder = None, True

    proxies = tuple(p.raw for p in desired.proxy_addresses if not (p.is_smtp and p.key in conflicted))
    return ExportPlan(
        upn=upn,
        needs_placeholder=needs_placeholder,
        proxy_addresses=proxies,
        claim=claimed - current.held,
        release=frozenset(current.held - keep),
        open_quarantines=tuple(opened),
        close_quarantines=(frozenset(current.quarantines) - conflicted) | replaced,
    )


def plan_delete(current: CurrentState) -> ExportPlan:
    """A deleted object lets go of every value and every entry."""
    return ExportPlan(
        upn=None,
        needs_placeholder=False,
        proxy_addresses=(),
        claim=frozenset(),
        release=frozenset(current.held),
        open_quarantines=(),
        close_quarantines=frozenset(current.quarantines),
    )


def _is_own_placeholder(current_upn: str, wanted_upn: str) -> bool:
    """A placeholder made for the same wanted UPN is kept, so the object's UPN does not churn."""
    domain = current_upn.rpartition("@")[2]
    return is_placeholder_for(current_upn, wanted_upn, domain)


def earliest_waiter(waiters: list[tuple[datetime, str]]) -> str | None:
    """Several objects waiting for one value: the earliest quarantined gets it first."""
    return min(waiters)[1] if waiters else None
