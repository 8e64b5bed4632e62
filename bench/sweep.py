"""The hourly sweep over many open quarantines, a share of them resolved.

    python -m bench.sweep [--quarantines 100000] [--free-percent 1]

Builds the quarantines inside PostgreSQL (holders with their claims, waiters with their entries),
deletes the resolved share's holders and their claims without any fast release, then times the full
sweep the beat task runs. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import time

from bench.environment import bench_environment, print_figures

# Each value as the apply path leaves it: the holder claims its UPN, the waiter its placeholder and
# waits (one entry) for the holder's UPN. Built inside PostgreSQL (generate_series), so 1,000,000
# quarantines (2,000,000 objects and claims, 1,000,000 entries) take no Python round trip per row.
_BUILD = """
INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name, wanted_upn, upn,
                               wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at)
SELECT :tenant, kind || '-' || i, md5(kind || i)::uuid::text, 'User', kind || ' ' || i, 'v' || i || '@bench.test',
       CASE WHEN kind = 'holder' THEN 'v' || i || '@bench.test' ELSE 'v' || i || '+0001@bench.onmicrosoft.com' END,
       '[]', '[]', '{}', 1, false, now()
FROM generate_series(0, :count - 1) AS i CROSS JOIN (VALUES ('holder'), ('waiter')) AS k(kind);

INSERT INTO claimed_values (tenant_id, key, object_pk, claimed_at)
SELECT tenant_id, upn, id, now() FROM directory_objects WHERE tenant_id = :tenant;

INSERT INTO provisioning_errors (tenant_id, object_pk, object_class, key, category, property_name, property_value,
                                 conflicting_object_id, occurred_at)
SELECT tenant_id, id, 'User', wanted_upn, 'PropertyConflict', 'UserPrincipalName', wanted_upn, 'holder', now()
FROM directory_objects WHERE tenant_id = :tenant AND source_anchor LIKE 'waiter-%'
"""

# The resolved share: holders gone (their claims with them) without any fast release.
_RESOLVE = """
DELETE FROM directory_objects
WHERE tenant_id = :tenant AND source_anchor = ANY (SELECT 'holder-' || i FROM generate_series(0, :free - 1) AS i);
"""


def build_quarantines(tenant_id: int, count: int, free: int) -> None:
    """`count` waiters each quarantined on a value its holder has; the first `free` holders are gone
    (their claims with them, by the foreign key's cascade) without any fast release."""
    from bench.bulk_build import build

    parameters = {"tenant": tenant_id, "count": count, "free": free}
    build(_BUILD, parameters, ("directory_objects", "claimed_values", "provisioning_errors"), then=_RESOLVE)


def measure(quarantines: int = 100_000, free_percent: float = 1.0) -> dict[str, float]:
    free = int(quarantines * free_percent / 100)
    with bench_environment():
        from redis import Redis

        from shared.exports.applier import ExportApplier
        from shared.locks.manager import LockManager
        from shared.release.sweep import sweep
        from shared.settings import get_settings
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant

        settings = get_settings()
        with transaction() as session:
            tenant_id = create_tenant(session, TenantSpec("bench", "bench.onmicrosoft.com")).id
        started = time.perf_counter()
        build_quarantines(tenant_id, quarantines, free)
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
