"""Placeholder UPNs: `<prefix>+<4 digits>@<initial domain>`, drawn at random and claimed like any value."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator

from sqlalchemy import (
    Connection,
    select,
)

from shared.core.decision import DesiredState, ExportPlan
from shared.core.values import placeholder_upn, value_key
from shared.directory.objects import TenantInfo
from shared.store.tables import (
    claims,
)


class PlaceholdersExhausted(RuntimeError):
    """Every `prefix+NNNN` for one prefix is taken: an operator has to look."""


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
