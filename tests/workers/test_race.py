"""Many exports fighting over a small pool of values on several worker processes at once."""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import func, select

from shared.db import transaction
from shared.models import ClaimedValue, DirectoryObject, ProvisioningError, Tenant
from shared.values import parse_proxy_address, value_key
from tests.conftest import ARTIFACTS, export_line
from tests.workers.helpers import failures, post_and_wait, wait_until_idle

pytestmark = pytest.mark.integration

POOL = [f"shared{i}@contoso.com" for i in range(12)]
OBJECTS = [f"user-{i}" for i in range(40)] + [f"group-{i}" for i in range(15)] + [f"contact-{i}" for i in range(10)]
ROUNDS = 18


def _random_export(rng: random.Random, tenant: str, anchor: str, sequence: int) -> tuple[str, dict | None]:
    """One export for `anchor`; returns the line and the desired attributes (None: deleted)."""
    if sequence > 1 and rng.random() < 0.1:
        return export_line(tenant, anchor, _class_of(anchor), sequence, "delete"), None
    attributes: dict = {"displayName": anchor}
    picks = rng.sample(POOL, rng.randint(0, 3))
    proxies = [f"{rng.choice(['SMTP', 'smtp'])}:{p.upper() if rng.random() < 0.3 else p}" for p in picks]
    if _class_of(anchor) == "User":
        attributes["userPrincipalName"] = rng.choice(POOL + [f"{anchor}@contoso.com"] * 4)
    attributes["proxyAddresses"] = proxies
    operation = "add" if sequence == 1 else "update"
    return export_line(tenant, anchor, _class_of(anchor), sequence, operation, **attributes), attributes


def _class_of(anchor: str) -> str:
    return {"user": "User", "group": "Group", "contact": "Contact"}[anchor.split("-")[0]]


def _wanted_keys(attributes: dict) -> set[str]:
    keys = {value_key(attributes["userPrincipalName"])} if "userPrincipalName" in attributes else set()
    for raw in attributes["proxyAddresses"]:
        proxy = parse_proxy_address(raw)
        if proxy.is_smtp:
            keys.add(proxy.key)
    return keys


def test_racing_exports_never_give_one_value_two_holders(tenant: Tenant, redis_client: Redis, workers: object) -> None:
    rng = random.Random(20261126)
    rounds: list[list[str]] = []
    final: dict[str, dict | None] = {}
    for sequence in range(1, ROUNDS + 1):
        batch = []
        for anchor in OBJECTS:
            line, desired = _random_export(rng, tenant.name, anchor, sequence)
            batch.append(line)
            final[anchor] = desired
        rng.shuffle(batch)
        rounds.append(batch)
    # Adjacent rounds overlap on the queue, so one object's exports are also delivered out of order.
    lines = [line for batch in rounds for line in batch]
    for i in range(0, len(lines) - 1, 7):
        j = min(len(lines) - 1, i + rng.randint(1, 90))
        lines[i], lines[j] = lines[j], lines[i]

    started = time.perf_counter()
    counts = post_and_wait(redis_client, lines, timeout_s=600)
    elapsed = time.perf_counter() - started
    wait_until_idle(redis_client)
    rate = len(lines) / elapsed
    ARTIFACTS.mkdir(exist_ok=True)
    Path(ARTIFACTS, "race.json").write_text(
        json.dumps({"exports": len(lines), "seconds": elapsed, "exports_per_s": rate, "outcomes": counts})
    )
    print(f"\nrace: {len(lines)} exports in {elapsed:.2f} s = {rate:.0f} exports/s, outcomes {counts}")

    assert len(lines) >= 1000
    assert sum(counts.values()) == len(lines) and "failed" not in counts
    assert failures(tenant.name) == []

    with transaction() as session:
        objects = {
            o.source_anchor: o
            for o in session.scalars(select(DirectoryObject).where(DirectoryObject.tenant_id == tenant.id))
        }
        held: dict[int, set[str]] = defaultdict(set)
        for claim in session.scalars(select(ClaimedValue).where(ClaimedValue.tenant_id == tenant.id)):
            held[claim.object_pk].add(claim.key)
        entries: dict[int, list[str]] = defaultdict(list)
        for entry in session.scalars(select(ProvisioningError).where(ProvisioningError.tenant_id == tenant.id)):
            entries[entry.object_pk].append(entry.key)
        duplicate_claims = session.execute(
            select(ClaimedValue.key, func.count())
            .where(ClaimedValue.tenant_id == tenant.id)
            .group_by(ClaimedValue.key)
            .having(func.count() > 1)
        ).all()

    assert duplicate_claims == []
    effective_owner: Counter[str] = Counter()
    all_held = set().union(*held.values()) if held else set()
    for anchor, desired in final.items():
        obj = objects[anchor]
        assert obj.last_sequence == ROUNDS, f"{anchor} did not end at its last sequence"
        if desired is None:
            assert obj.deleted and not held[obj.id] and not entries[obj.id]
            continue
        assert not obj.deleted
        assert obj.wanted_proxy_addresses == desired["proxyAddresses"]
        for key in _wanted_keys(desired):
            has_value, waiting = key in held[obj.id], entries[obj.id].count(key)
            assert (has_value and waiting == 0) or (not has_value and waiting == 1), (
                f"{anchor}: holds {key}={has_value}, entries for it={waiting}"
            )
            if waiting:
                assert key in all_held, f"{anchor} still waits for {key}, which nobody holds"
        effective = {parse_proxy_address(p).key for p in obj.proxy_addresses if p.lower().startswith("smtp:")}
        if obj.upn:
            effective.add(value_key(obj.upn))
        assert effective <= held[obj.id], f"{anchor} shows values it does not hold"
        effective_owner.update(effective)
    assert [k for k, n in effective_owner.items() if n > 1] == []
