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

    A batch's values are distinct, so up to `concurrency` threads release them at once: a release is
    mostly waiting on Redis and PostgreSQL round trips, which threads overlap (SQLite gets one thread,
    it takes one writer at a time anyway). Two releases for one object meet at its lock and take turns.
    An unfinished result carries the cursor to continue from.
    """
    started = time.monotonic()
    result = SweepResult()
    cursor = after
    if get_engine(applier.settings.database_url).dialect.name == "sqlite":
        concurrency = 1
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="sweep") as pool:
        while True:
            batch = free_waited_values(cursor, batch_size, tenant, applier.settings.database_url)
            result.batches += 1
            released = pool.map(lambda row: _release_chain(applier, row[1], row[3], row[2]), batch)
            for (tenant_id, name, key, _anchor), count in zip(batch, released, strict=True):
                result.examined += 1
                if count:
                    result.released += count
                    result.released_by_tenant[name] = result.released_by_tenant.get(name, 0) + count
                cursor = (tenant_id, key)
            if len(batch) < batch_size:
                cursor = None
                break
            if budget_s is not None and time.monotonic() - started > budget_s:
                break
    result.cursor = cursor
    result.seconds = time.monotonic() - started
    return result


def _release_chain(applier: ExportApplier, tenant: str, anchor: str, key: str) -> int:
    """Give `key` to `anchor`, then whatever that frees (such as a placeholder) to its waiters; count them."""
    released = 0
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
