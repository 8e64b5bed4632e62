"""The database is the last guard: even with every Redis lock lost, no value gets two holders."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from redis import Redis
from sqlalchemy import select

from shared.core.values import parse_proxy_address, value_key
from shared.exports.applier import ExportApplier
from shared.exports.outcomes import RetryLater
from shared.locks.manager import LockManager
from shared.settings import get_settings
from shared.store.engine import transaction
from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError, Tenant
from tests.conftest import export_line
from tests.services import TEST_REDIS_URL

VALUES = [f"v{i}@contoso.com" for i in range(4)]


def applier_with_private_locks(db: int) -> ExportApplier:
    """Locks in a Redis database nobody else uses: as if every other export's lock had expired."""
    redis = Redis.from_url(TEST_REDIS_URL.rsplit("/", 1)[0] + f"/{db}")
    return ExportApplier(LockManager(redis), get_settings(), attempts=20)


@pytest.mark.parametrize("batch_size", [1, 6], ids=["alone", "in-batches"])
def test_racing_exports_whose_locks_never_meet_still_leave_one_holder_per_value(
    tenant: Tenant, batch_size: int
) -> None:
    anchors = [f"obj-{i}" for i in range(8)]
    applied: dict[str, list[tuple[int, list[str]]]] = {anchor: [] for anchor in anchors}  # (sequence, proxies)
    errors: list[BaseException] = []
    guard = threading.Lock()

    def race(db: int, seed: int) -> None:
        applier, rng = applier_with_private_locks(db), random.Random(seed)
        for first_step in range(0, 60, batch_size):
            batch = []
            for step in range(first_step, first_step + batch_size):
                anchor = rng.choice(anchors)
                proxies = [f"SMTP:{v}" for v in rng.sample(VALUES, 2)]
                sequence = step * 2 + (db % 2) + 1  # the two racers never reuse a sequence
                batch.append(
                    (
                        anchor,
                        sequence,
                        proxies,
                        export_line(tenant.name, anchor, "Contact", sequence, proxyAddresses=proxies),
                    )
                )
            try:
                outcomes = applier.apply_many([line for *_, line in batch]) if batch_size > 1 else [None]
            except BaseException as exc:
                errors.append(exc)
                return
            for (anchor, sequence, proxies, line), outcome in zip(batch, outcomes, strict=True):
                try:
                    outcome = outcome or applier.apply(line)  # what the worker does with one the batch left
                except RetryLater:
                    continue  # what the Celery task would retry; the store must still be consistent
                except BaseException as exc:
                    errors.append(exc)
                    return
                if outcome.status == "applied":
                    with guard:
                        applied[anchor].append((sequence, proxies))

    threads = [threading.Thread(target=race, args=(db, db * 7)) for db in (10, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The racers record in their own order; the store must end in each object's highest applied export.
    last = {anchor: max(exports) for anchor, exports in applied.items() if exports}
    assert len(last) == len(anchors), "every object had an export applied"

    with transaction() as session:
        objects = list(session.scalars(select(DirectoryObject).where(DirectoryObject.tenant_id == tenant.id)))
        claims = list(session.scalars(select(ClaimedValue).where(ClaimedValue.tenant_id == tenant.id)))
        entries = list(session.scalars(select(ProvisioningError).where(ProvisioningError.tenant_id == tenant.id)))
    shown = Counter(parse_proxy_address(p).key for o in objects for p in o.proxy_addresses)
    assert [k for k, n in shown.items() if n > 1] == [], "a value is shown on two objects"
    held_by = {c.key: c.object_pk for c in claims}
    assert {o.source_anchor: (o.last_sequence, o.wanted_proxy_addresses) for o in objects} == {
        anchor: (sequence, proxies) for anchor, (sequence, proxies) in last.items()
    }, "an object is not in the state of its last applied export"
    for obj in objects:
        wanted = {parse_proxy_address(p).key for p in obj.wanted_proxy_addresses}
        waiting = Counter(e.key for e in entries if e.object_pk == obj.id)
        for key in wanted:
            assert (held_by.get(key) == obj.id) != (waiting[key] == 1), f"{obj.source_anchor} and {key}"
        assert {value_key(k) for k in waiting} <= wanted
