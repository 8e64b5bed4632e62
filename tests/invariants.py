"""What must hold for a tenant's store once every export is applied, whatever happened on the way.

`check_directory` returns findings instead of asserting, so a fault test can count what was *lost*
(an object not in the state of its last export) and what was *duplicated* (a value with two
holders, an entry twice) before it asserts that both are empty; `assert_race_invariants` is the
same check for tests that only need it to pass.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from shared.core.values import is_placeholder_for, parse_proxy_address, value_key
from shared.store.engine import transaction
from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError, Tenant
from tests.workload import FinalStates, race_workload

__all__ = ["Findings", "InvariantReport", "assert_race_invariants", "check_directory", "race_workload", "wanted_keys"]


def wanted_keys(attributes: Mapping[str, Any]) -> set[str]:
    """The UPN / SMTP namespace keys an export asks for."""
    keys = {value_key(attributes["userPrincipalName"])} if attributes.get("userPrincipalName") else set()
    for raw in attributes.get("proxyAddresses", ()):
        proxy = parse_proxy_address(raw)
        if proxy.is_smtp:
            keys.add(proxy.key)
    return keys


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    objects: int = 0
    checks: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.inconsistent)


def check_directory(
    tenant_id: int,
    final: Mapping[str, Mapping[str, Any] | None],
    last_sequence: Mapping[str, int],
    *,
    database_url: str | None = None,
    releases_queued: Collection[str] = (),
) -> Findings:
    """Each object in the state of its last export; no value with two holders; every wanted value
    held by the object or quarantined exactly once, and then held by someone else; no entry for a
    value the object no longer asks for; a User shows its UPN or a placeholder for it.

    `database_url` names another database than the suite's (the multi-host test runs its own).
    `releases_queued` are values whose fast release sits on the broker, not run yet (a check taken
    mid-run): a waiter for one of them is on its way to the value, not forgotten.
    """
    findings = Findings()
    with transaction(database_url) as session:
        initial_domain = session.scalars(select(Tenant.initial_domain).where(Tenant.id == tenant_id)).one()
        objects = {
            o.source_anchor: o
            for o in session.scalars(select(DirectoryObject).where(DirectoryObject.tenant_id == tenant_id))
        }
        held: dict[int, set[str]] = defaultdict(set)
        for claim in session.scalars(select(ClaimedValue).where(ClaimedValue.tenant_id == tenant_id)):
            held[claim.object_pk].add(claim.key)
        entries: dict[int, list[str]] = defaultdict(list)
        for entry in session.scalars(select(ProvisioningError).where(ProvisioningError.tenant_id == tenant_id)):
            entries[entry.object_pk].append(entry.key)
        duplicate_claims = session.execute(
            select(ClaimedValue.key, func.count())
            .where(ClaimedValue.tenant_id == tenant_id)
            .group_by(ClaimedValue.key)
            .having(func.count() > 1)
        ).all()

    findings.duplicated += [f"{key} is claimed {count} times" for key, count in duplicate_claims]
    findings.objects = len(final)
    findings.checks = 1
    all_held = set().union(*held.values()) if held else set()
    effective_owner: Counter[str] = Counter()
    for anchor, desired in final.items():
        obj = objects.get(anchor)
        if obj is None:
            findings.lost.append(f"{anchor} was never created")
            continue
        if obj.last_sequence != last_sequence[anchor]:
            findings.lost.append(f"{anchor} ended at sequence {obj.last_sequence}, not {last_sequence[anchor]}")
            continue
        if desired is None:
            if not (obj.deleted and not held[obj.id] and not entries[obj.id]):
                findings.lost.append(f"{anchor}'s delete did not take effect")
            continue
        if obj.deleted or obj.wanted_proxy_addresses != list(desired.get("proxyAddresses", [])):
            findings.lost.append(f"{anchor} does not hold the attributes of its last export")
            continue
        for key in wanted_keys(desired):
            findings.checks += 1
            has_value, waiting = key in held[obj.id], entries[obj.id].count(key)
            if waiting > 1:
                findings.duplicated.append(f"{anchor} has {waiting} entries for {key}")
            elif has_value == bool(waiting):
                findings.inconsistent.append(f"{anchor}: holds {key}={has_value}, entries for it={waiting}")
            elif waiting and key not in all_held and key not in releases_queued:
                findings.inconsistent.append(f"{anchor} still waits for {key}, which nobody holds")
        wanted = wanted_keys(desired)
        findings.checks += 1
        if stale := sorted(set(entries[obj.id]) - wanted):
            findings.inconsistent.append(f"{anchor} has entries for {stale}, which it no longer asks for")
        effective = {parse_proxy_address(p).key for p in obj.proxy_addresses if p.lower().startswith("smtp:")}
        wanted_upn = desired.get("userPrincipalName")
        if wanted_upn:
            findings.checks += 1
            if not obj.upn or not (
                value_key(obj.upn) == value_key(wanted_upn) or is_placeholder_for(obj.upn, wanted_upn, initial_domain)
            ):
                findings.inconsistent.append(
                    f"{anchor} shows UPN {obj.upn!r}, neither {wanted_upn} nor its placeholder"
                )
        if obj.upn:
            effective.add(value_key(obj.upn))
        findings.checks += 2
        if not effective <= held[obj.id]:
            findings.inconsistent.append(f"{anchor} shows values it does not hold: {sorted(effective - held[obj.id])}")
        if hidden := sorted((wanted & held[obj.id]) - effective):
            findings.inconsistent.append(f"{anchor} holds {hidden} but does not show them")
        effective_owner.update(effective)
    findings.duplicated += [f"{key} is shown by {n} objects" for key, n in effective_owner.items() if n > 1]
    return findings


@dataclass(frozen=True)
class InvariantReport:
    objects: int
    checks: int


def assert_race_invariants(
    tenant: str,
    final: FinalStates | Mapping[str, Mapping[str, Any] | None],
    last_sequence: Mapping[str, int] | None = None,
    *,
    database_url: str | None = None,
) -> InvariantReport:
    """Every invariant of `check_directory`, asserted; `final` from a workload knows its sequences."""
    sequences = last_sequence if last_sequence is not None else getattr(final, "last_sequence", None)
    assert sequences is not None, "pass last_sequence, or the FinalStates of a workload"
    with transaction(database_url) as session:
        tenant_id = session.scalars(select(Tenant.id).where(Tenant.name == tenant)).one()
    findings = check_directory(tenant_id, final, sequences, database_url=database_url)
    assert findings.clean, (
        f"lost {findings.lost}, duplicated {findings.duplicated}, inconsistent {findings.inconsistent}"
    )
    return InvariantReport(objects=findings.objects, checks=findings.checks)
