"""`errors list` with a property filter and a search string over a million provisioning errors.

    python -m bench.query [--entries 1000000] [--queries 200]

The rows are generated inside PostgreSQL (generate_series), then the same query the CLI runs is
timed with varied search strings. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import random
import time

from bench.bulk_build import build
from bench.environment import bench_environment, percentile, print_figures

_GENERATE = """
INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name, wanted_upn, upn,
                               wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at)
SELECT :tenant, 'obj-' || i, md5(i::text)::uuid::text, CASE WHEN i % 3 = 0 THEN 'Group' ELSE 'User' END,
       'Person ' || md5(i::text), 'p' || i || '@bench.test', 'p' || i || '+0001@bench.onmicrosoft.com',
       '[]', '[]', '{}', 1, false, now()
FROM generate_series(1, :count) AS i;

INSERT INTO provisioning_errors (tenant_id, object_pk, object_class, key, category, property_name, property_value,
                                 conflicting_object_id, occurred_at)
SELECT :tenant, o.id, o.object_class, 'v' || o.id || '@bench.test', 'PropertyConflict',
       CASE WHEN o.id % 2 = 0 THEN 'UserPrincipalName' ELSE 'ProxyAddresses' END,
       CASE WHEN o.id % 2 = 0 THEN '' ELSE 'smtp:' END || 'v' || o.id || '@bench.test',
       md5('holder' || o.id)::uuid::text, now() - (o.id || ' seconds')::interval
FROM directory_objects o WHERE o.tenant_id = :tenant;
"""


BUILT_TABLES = ("directory_objects", "provisioning_errors")


def measure(entries: int = 1_000_000, queries: int = 200) -> dict[str, float]:
    with bench_environment():
        from shared import queries as read
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant

        with transaction() as session:
            tenant = create_tenant(session, TenantSpec("bench", "bench.onmicrosoft.com"))
        started = time.perf_counter()
        build(_GENERATE, {"tenant": tenant.id, "count": entries}, BUILT_TABLES)
        setup_s = time.perf_counter() - started

        rng = random.Random(7)
        timings: list[float] = []
        found = 0
        for _ in range(queries):
            search = rng.choice(
                [f"v{rng.randint(1, entries)}@", md5_fragment(rng), "person", f"p{rng.randint(1, entries)}"]
            )
            prop = rng.choice(["UserPrincipalName", "ProxyAddresses"])
            begin = time.perf_counter()
            with transaction() as session:
                rows = read.list_provisioning_errors(
                    session, tenant, category="PropertyConflict", property_name=prop, search=search, limit=500
                )
            timings.append((time.perf_counter() - begin) * 1000)
            found += len(rows)
    return {
        "entries": entries,
        "queries": queries,
        "query_p50_ms": round(percentile(timings, 50), 1),
        "query_p99_ms": round(percentile(timings, 99), 1),
        "rows_returned": found,
        "setup_s": round(setup_s, 1),
    }


def md5_fragment(rng: random.Random) -> str:
    import hashlib

    return hashlib.md5(str(rng.randint(1, 10**6)).encode()).hexdigest()[:8]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    figures = measure(args.entries, args.queries)
    print_figures(figures)


if __name__ == "__main__":
    main()
