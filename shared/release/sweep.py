"""The release sweep: find every quarantined value that nobody holds and give it to its waiter.

The fast path (`release_values` after a freeing commit) does this within a second; the sweep is
the safety net beat runs hourly, in bounded batches walked by a (tenant, value) cursor.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import aliased

from shared.exports.applier import ExportApplier
from shared.exports.outcomes import Outcome
from shared.store.engine import get_engine, transaction
from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError, Tenant

Cursor = tuple[int, str]


@dataclass(slots=True)
class SweepResult:
    examined: int = 0
    released: int = 0
    batches: int = 0
    seconds: float = 0.0
    cursor: Cursor | None = None
    released_by_tenant: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.cursor is None


def free_waited_values(
    after: Cursor | None, limit: int, tenant: str | None = None, database_url: str | None = None
) -> list[tuple[int, str, str, str]]:
    """Up to `limit` (tenant id, tenant name, value, earliest waiter) that nobody holds."""
    waiting = aliased(ProvisioningError)
    earliest_waiter = (
        select(DirectoryObject.source_anchor)
        .join(waiting, waiting.object_pk == DirectoryObject.id)
        .where(waiting.tenant_id == ProvisioningError.tenant_id, waiting.key == ProvisioningError.key)
        .order_by(waiting.occurred_at, waiting.id)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(ProvisioningError.tenant_id, Tenant.name, ProvisioningError.key, earliest_waiter)
        .join(Tenant, Tenant.id == ProvisioningError.tenant_id)
        .outerjoin(
            ClaimedValue,
            and_(ClaimedValue.tenant_id == ProvisioningError.tenant_id, ClaimedValue.key == ProvisioningError.key),
        )
        .where(ClaimedValue.key.is_(None))
        .distinct()
        .order_by(ProvisioningError.tenant_id, ProvisioningError.key)
        .limit(limit)
    )
    if tenant is not None:
        query = query.where(Tenant.name == tenant)
    if after is not None:
        query = query.where(tuple_(ProvisioningError.tenant_id, ProvisioningError.key) > tuple_(*after))
    with transaction(database_url) as session:
        return [(tenant_id, name, key, anchor) for tenant_id, name, key, anchor in session.execute(query)]


def sweep(
    applier: ExportApplier,
    *,
    tenant: str | None = None,
    batch_size: int = 500,
    budget_s: float | None = None,
    after: Cursor | None = None,
    concurrency: int = 1,
) -> SweepResult:
    """Release every free waited-for value, batch by batch; stop early when `budget_s` runs out.

    A batch's values are distinct; it is split among `concurrency` threads, and each thread releases
    its share in one transaction under one lock call (`ExportApplier.release_many`), as a worker
    applies a batch of exports: the threads overlap the round trips (SQLite gets one thread, it takes
    one writer at a time anyway). Two releases for one object in different shares meet at its lock:
    the second goes alone after its share commits.
    An unfinished result carries the cursor to continue from.
    """
    started = time.monotonic()
    result = SweepResult()
    cursor = after
    if get_engine(applier.settings.database_url).dialect.name == "sqlite":
        concurrency = 1
    threads = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sweep") as pool:
        while True:
            batch = free_waited_values(cursor, batch_size, tenant, applier.settings.database_url)
            result.batches += 1
            chunks = [batch[i::threads] for i in range(threads)]
            for chunk, released in zip(
                chunks, pool.map(lambda rows: _release_chunk(applier, rows), chunks), strict=True
            ):
                for (_tenant_id, name, _key, _anchor), count in zip(chunk, released, strict=True):
                    result.examined += 1
                    if count:
                        result.released += count
                        result.released_by_tenant[name] = result.released_by_tenant.get(name, 0) + count
            if batch:
                cursor = (batch[-1][0], batch[-1][2])
            if len(batch) < batch_size:
                cursor = None
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                break
    result.cursor = cursor
    result.seconds = time.monotonic() - started
    return result


def _release_chunk(applier: ExportApplier, rows: list[tuple[int, str, str, str]]) -> list[int]:
    """A thread's share of a batch: released together in one transaction (`release_many`), then each
    one the batch could not take, or whose waiter stopped asking, alone; counts per row."""
    together = applier.release_many([(name, anchor, key) for _, name, key, anchor in rows])
    return [
        _release_chain(applier, name, anchor, key, first)
        for (_, name, key, anchor), first in zip(rows, together, strict=True)
    ]


def _release_chain(applier: ExportApplier, tenant: str, anchor: str, key: str, first: Outcome | None = None) -> int:
    """Give `key` to `anchor` (unless `first` says how that went), then whatever that frees (such as a
    placeholder) to its waiters; count them."""
    released = 0
    if first is None:
        first = applier.release_to(tenant, anchor, key)
    if first.status == "nothing-to-release":
        first = applier.release(tenant, key)  # the waiter found stopped asking since: the next one
    outcomes = [first]
    while outcomes:
        outcome = outcomes.pop()
        if outcome.status == "released":
            released += 1
            outcomes.extend(applier.release(tenant, freed) for freed in outcome.freed_with_waiters)
    return released
