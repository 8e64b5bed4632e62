"""The hourly sweep over many open quarantines, a share of them resolved.

    python -m bench.sweep [--quarantines 100000] [--free-percent 1]

Builds the quarantines with bulk inserts (holders with their claims, waiters with their entries),
deletes the holders' claims for the resolved share without any fast release, then times the full
sweep the beat task runs. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

from bench.environment import bench_environment, print_figures

CHUNK = 5_000


def build_quarantines(tenant_id: int, count: int, free: int) -> None:
    """`count` waiters each quarantined on a value its holder has; the first `free` holders let go."""
    from sqlalchemy import delete, insert, select

    from shared.store.engine import transaction
    from shared.store.tables import ClaimedValue, DirectoryObject, ProvisioningError

    now = datetime.now(UTC)
    for start in range(0, count, CHUNK):
        indices = range(start, min(count, start + CHUNK))
        with transaction() as session:

            def objects(kind: str, indices: range = indices) -> list[dict[str, object]]:
                return [
                    dict(
                        tenant_id=tenant_id,
                        source_anchor=f"{kind}-{i}",
                        object_id=str(uuid.uuid4()),
                        object_class="User",
                        display_name=f"{kind} {i}",
                        wanted_upn=f"v{i}@bench.test",
                        upn=f"v{i}@bench.test" if kind == "holder" else f"v{i}+0001@bench.onmicrosoft.com",
                        wanted_proxy_addresses=[],
                        proxy_addresses=[],
                        attributes={},
                        last_sequence=1,
                        deleted=False,
                        updated_at=now,
                    )
                    for i in indices
                ]

            session.execute(insert(DirectoryObject), objects("holder") + objects("waiter"))
            ids = dict(
                session.execute(
                    select(DirectoryObject.source_anchor, DirectoryObject.id).where(
                        DirectoryObject.tenant_id == tenant_id,
                        DirectoryObject.source_anchor.in_([f"{k}-{i}" for i in indices for k in ("holder", "waiter")]),
                    )
                ).all()
            )
            session.execute(
                insert(ClaimedValue),
                [
                    dict(tenant_id=tenant_id, key=key, object_pk=ids[anchor], claimed_at=now)
                    for i in indices
                    for key, anchor in (
                        (f"v{i}@bench.test", f"holder-{i}"),
                        (f"v{i}+0001@bench.onmicrosoft.com", f"waiter-{i}"),
                    )
                ],
            )
            session.execute(
                insert(ProvisioningError),
                [
                    dict(
                        tenant_id=tenant_id,
                        object_pk=ids[f"waiter-{i}"],
                        key=f"v{i}@bench.test",
                        category="PropertyConflict",
                        property_name="UserPrincipalName",
                        property_value=f"v{i}@bench.test",
                        conflicting_object_id="holder",
                        occurred_at=now,
                    )
                    for i in indices
                ],
            )
    with transaction() as session:
        session.execute(
            delete(ClaimedValue).where(
                ClaimedValue.tenant_id == tenant_id, ClaimedValue.key.in_([f"v{i}@bench.test" for i in range(free)])
            )
        )
        session.execute(
            delete(DirectoryObject).where(
                DirectoryObject.tenant_id == tenant_id,
                DirectoryObject.source_anchor.in_([f"holder-{i}" for i in range(free)]),
            )
        )


def measure(quarantines: int, free_percent: float) -> dict[str, float]:
    free = int(quarantines * free_percent / 100)
    with bench_environment():
        from redis import Redis
        from sqlalchemy import text

        from shared.exports.applier import ExportApplier
        from shared.locks.manager import LockManager
        from shared.release.sweep import sweep
        from shared.settings import get_settings
        from shared.store.engine import get_engine, transaction
        from shared.tenants.registry import TenantSpec, create_tenant

        settings = get_settings()
        with transaction() as session:
            tenant_id = create_tenant(session, TenantSpec("bench", "bench.onmicrosoft.com")).id
        started = time.perf_counter()
        build_quarantines(tenant_id, quarantines, free)
        with get_engine().connect() as connection:
            connection.execute(text("ANALYZE"))
        setup_s = time.perf_counter() - started
        applier = ExportApplier(LockManager(Redis.from_url(settings.redis_url)), settings)
        result = sweep(applier, batch_size=settings.sweep_batch_size, concurrency=settings.sweep_concurrency)
    assert result.released == free, f"released {result.released} of {free}"
    return {
        "quarantines": quarantines,
        "free": free,
        "released": result.released,
        "sweep_s": round(result.seconds, 2),
        "setup_s": round(setup_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quarantines", type=int, default=100_000)
    parser.add_argument("--free-percent", type=float, default=1.0)
    args = parser.parse_args()
    figures = measure(args.quarantines, args.free_percent)
    print_figures(figures)


if __name__ == "__main__":
    main()
