"""What must hold for a tenant's store once every export is applied, whatever happened on the way.

`check_directory` returns findings instead of asserting, so a fault test can count what was *lost*
(an object not in the state of its last export) and what was *duplicated* (a value with two
holders, an entry twice) before it asserts that both are empty; `assert_race_invariants` is the
same check for tests that only need it to pass.

Who an entry names is checked on the read side (`entries_with_holders`, behind `errors list`,
`object show`, Graph and SCIM): the stored `conflicting_object_id` records the holder when the
entry was opened and goes stale by design when that holder lets go and the next waiter takes over
(shared/queries/provisioning_errors.py), or names an object id that is gone (a deleted holder
re-created gets a new one). Of the stored column only this is asked: it never names the waiter.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from shared.core.values import is_placeholder_for, parse_proxy_address, value_key
from shared.queries.provisioning_errors import entries_with_holders
from shared.store.engine import transaction
from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError, Tenant
from tests.workload import FinalStates, race_workload

__all__ = [
    "Findings",
    "InvariantReport",
    "assert_race_invariants",
    "check_directory",
    "claims_not_asked_for",
    "misnamed_holders",
    "race_workload",
    "wanted_keys",
]


def wanted_keys(attributes: Mapping[str, Any]) -> set[str]:
    """The UPN / SMTP namespace keys an export asks for."""
    keys = {value_key(attributes["userPrincipalName"])} if attributes.get("userPrincipalName") else set()
    for raw in attributes.get("proxyAddresses", ()):
        proxy = parse_proxy_address(raw)
        if proxy.is_smtp:
            keys.add(proxy.key)
    return keys


def claims_not_asked_for(
    held: Collection[str], wanted: Collection[str], upn: str | None, wanted_upn: str | None, initial_domain: str
) -> list[str]:
    """The keys an object holds beyond what it asks for: its values, and the placeholder standing in
    for its wanted UPN while another object holds that UPN. A released UPN frees the placeholder."""
    allowed = set(wanted)
    if wanted_upn and value_key(wanted_upn) not in held and is_placeholder_for(upn, wanted_upn, initial_domain):
        allowed.add(value_key(upn or ""))
    return sorted(set(held) - allowed)


def misnamed_holders(
    entries: Collection[tuple[str, str, str]], holders: Mapping[str, str], releases_queued: Collection[str] = ()
) -> list[str]:
    """Entries (waiter, key, named) whose named object is not the one holding the key now.

    A key nobody holds is only allowed while its release is queued; then there is no holder to name.
    """
    wrong = []
    for waiter, key, named in entries:
        holder = holders.get(key)
        if holder is None and key in releases_queued:
            continue
        if named != holder:
            wrong.append(f"{waiter}'s entry for {key} names {named}, but {holder} holds it")
    return wrong


@dataclass
class Findings:
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    objects: int = 0
    checks: int = 0
    entries: int = 0  # provisioning-error entries read
    renamed: int = 0  # of them, read with another holder than the stored name: a waiter took over

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
    held by the object or quarantined exactly once, and then held by someone else; no entry and no
    claim for a value the object no longer asks for; every entry, as read, names the value's holder
    now; a User shows its UPN or a placeholder for it.

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
        stored_names: list[tuple[int, str, str]] = []
        for entry in session.scalars(select(ProvisioningError).where(ProvisioningError.tenant_id == tenant_id)):
            entries[entry.object_pk].append(entry.key)
            stored_names.append((entry.object_pk, entry.key, entry.conflicting_object_id))
        as_read = session.execute(
            entries_with_holders()
            .add_columns(ProvisioningError.key, ProvisioningError.conflicting_object_id.label("stored_name"))
            .where(ProvisioningError.tenant_id == tenant_id)
        ).all()
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
    object_id_of = {o.id: o.object_id for o in objects.values()}
    holder_of = {key: object_id_of.get(pk, f"row {pk} of another tenant") for pk, keys in held.items() for key in keys}
    findings.checks += len(as_read) + len(stored_names)
    findings.entries = len(as_read)
    findings.renamed = sum(1 for row in as_read if row.conflicting_object_id != row.stored_name)
    findings.inconsistent += misnamed_holders(
        [(row.source_anchor, row.key, row.conflicting_object_id) for row in as_read], holder_of, releases_queued
    )
    for pk, key, named in stored_names:
        if named == object_id_of.get(pk):
            findings.inconsistent.append(f"the stored entry of {object_id_of.get(pk)} for {key} names {named}")
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
        findings.checks += 2
        if stale := sorted(set(entries[obj.id]) - wanted):
            findings.inconsistent.append(f"{anchor} has entries for {stale}, which it no longer asks for")
        if kept := claims_not_asked_for(
            held[obj.id], wanted, obj.upn, desired.get("userPrincipalName"), initial_domain
        ):
            findings.inconsistent.append(f"{anchor} keeps claims on {kept}, which it no longer asks for")
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
    for anchor, obj in objects.items():
        if anchor in final:
            continue
        # Not in this workload: what it asks for is what its last export stored.
        stored = (
            {} if obj.deleted else {"userPrincipalName": obj.wanted_upn, "proxyAddresses": obj.wanted_proxy_addresses}
        )
        findings.checks += 1
        if kept := claims_not_asked_for(
            held[obj.id], wanted_keys(stored), obj.upn, stored.get("userPrincipalName"), initial_domain
        ):
            findings.inconsistent.append(f"{anchor} keeps claims on {kept}, which it no longer asks for")
    findings.duplicated += [f"{key} is shown by {n} objects" for key, n in effective_owner.items() if n > 1]
    return findings


@dataclass(frozen=True)
class InvariantReport:
    objects: int
    checks: int
    entries: int
    renamed: int


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
    return InvariantReport(findings.objects, findings.checks, findings.entries, findings.renamed)
