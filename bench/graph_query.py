"""The Graph face's error filter with `$count=true` over a million directory objects.

    python -m bench.graph_query [--objects 1000000] [--error-every 100] [--queries 200]

The objects (two users to a group) and their provisioning errors (on every `--error-every`-th
object; 1 gives each object one) are generated inside PostgreSQL, as bench/query.py does. Then the
requests an admin's script sends go twice: answered in this process as `GET /v1.0/users` answers
them (`$filter` parsed and checked, one page of 100 with the page's errors and holders, and
`@odata.count`, in one transaction: `graph_query_inprocess_*`), then as real requests
`GET /v1.0/{users,groups}?$filter=...&$count=true&$top=100` to a real `uvicorn api.app:app`, one at a
time (`graph_query_p50_ms`, `graph_query_p99_ms`: what the client waits, JSON and HTTP included).
The filters vary: any() on the category, on the property, on one value, on a value prefix. The
build drops the plain indexes and builds them after the rows (bench/bulk_build.py). Prints a table
and a JSON line.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from bench.bulk_build import build
from bench.environment import bench_environment, percentile, print_figures
from bench.junk_flood import running_api

_GENERATE = """
INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name, wanted_upn, upn,
                               wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at)
SELECT :tenant, 'obj-' || i, md5(i::text)::uuid::text, CASE WHEN i % 3 = 0 THEN 'Group' ELSE 'User' END,
       'Person ' || md5(i::text), CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' || i || '@bench.test' END,
       CASE WHEN i % 3 = 0 THEN NULL ELSE 'p' || i || '@bench.test' END,
       jsonb_build_array('SMTP:m' || i || '@bench.test'), jsonb_build_array('SMTP:m' || i || '@bench.test'),
       '{}', 1, false, now()
FROM generate_series(1, :count) AS i;

INSERT INTO provisioning_errors (tenant_id, object_pk, object_class, key, category, property_name, property_value,
                                 conflicting_object_id, occurred_at)
SELECT :tenant, o.id, o.object_class, 'v' || o.id || '@bench.test', 'PropertyConflict',
       CASE WHEN o.object_class = 'User' AND o.id / :every % 2 = 0 THEN 'UserPrincipalName' ELSE 'ProxyAddresses' END,
       CASE WHEN o.object_class = 'User' AND o.id / :every % 2 = 0 THEN '' ELSE 'smtp:' END || 'v' || o.id || '@bench.test',
       md5('holder' || o.id)::uuid::text, now() - (o.id || ' seconds')::interval
FROM directory_objects o WHERE o.tenant_id = :tenant AND o.id % :every = 0;
"""


BUILT_TABLES = ("directory_objects", "provisioning_errors")


def filters(rng: random.Random, objects: int, every: int) -> tuple[str, str]:
    """A collection and an any() filter over its errors, as admins' scripts write them."""
    some = rng.randrange(every, objects, every)
    return rng.choice(
        [
            ("users", "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')"),
            ("groups", "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')"),
            ("users", "onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'UserPrincipalName')"),
            ("users", "onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'ProxyAddress')"),
            ("users", f"onPremisesProvisioningErrors/any(e:e/value eq 'V{some}@bench.test')"),
            ("groups", f"onPremisesProvisioningErrors/any(e:startswith(e/value, 'smtp:v{some // 10}'))"),
        ]
    )


def measure(objects: int = 1_000_000, every: int = 100, queries: int = 200) -> dict[str, float]:
    with bench_environment() as env:
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant
        from shared.tenants.tokens import issue_token

        with transaction() as session:
            tenant = create_tenant(session, TenantSpec("bench", "bench.onmicrosoft.com"))
            secret = issue_token(session, tenant).secret
        started = time.perf_counter()
        build(_GENERATE, {"tenant": tenant.id, "count": objects, "every": every}, BUILT_TABLES)
        setup_s = time.perf_counter() - started
        inprocess, counted, shown = _answer_in_process(tenant, objects, every, queries)
        with running_api(env) as (url, _pid):
            requests, requested = _request(url, secret, objects, every, queries)
    assert requested == counted, f"the API counted {requested}, the query {counted}: not the same requests"
    return {
        "graph_objects": objects,
        "graph_objects_with_errors": objects // every,
        "graph_queries": queries,
        "graph_query_p50_ms": round(percentile(requests, 50), 1),
        "graph_query_p99_ms": round(percentile(requests, 99), 1),
        "graph_query_inprocess_p50_ms": round(percentile(inprocess, 50), 1),
        "graph_query_inprocess_p99_ms": round(percentile(inprocess, 99), 1),
        "graph_mean_count": round(counted / queries),
        "graph_mean_page": round(shown / queries, 1),
        "graph_setup_s": round(setup_s, 1),
    }


def _answer_in_process(tenant: Any, objects: int, every: int, queries: int) -> tuple[list[float], int, int]:
    """Each filter answered as the route answers it, without HTTP: milliseconds, counts, page sizes."""
    from shared.queries.graph_ast import Collection, parse_filter
    from shared.queries.graph_directory import GraphQuery, count_directory_objects, list_directory_objects
    from shared.store.engine import transaction

    rng = random.Random(12)
    timings: list[float] = []
    counted = shown = 0
    for _ in range(queries):
        collection, expression = filters(rng, objects, every)
        begin = time.perf_counter()
        query = GraphQuery(Collection(collection), parse_filter(expression, Collection(collection)), top=100)
        with transaction() as session:
            page = list_directory_objects(session, tenant, query)
            counted += count_directory_objects(session, tenant, query)
        timings.append((time.perf_counter() - begin) * 1000)
        shown += len(page.objects)
    return timings, counted, shown


def _request(url: str, secret: str, objects: int, every: int, queries: int) -> tuple[list[float], int]:
    """The same filters as `GET /v1.0/{collection}?$filter=...&$count=true` to the real API, one
    client, one request at a time: milliseconds from sending to the whole body read, and the counts."""
    import httpx

    headers = {"Authorization": f"Bearer {secret}", "ConsistencyLevel": "eventual"}
    rng = random.Random(12)
    timings: list[float] = []
    counted = 0
    with httpx.Client(base_url=f"{url}/v1.0", headers=headers, timeout=60) as http:
        http.get("/users", params={"$top": "1"}).raise_for_status()  # imports and pools: no part of a request
        for _ in range(queries):
            collection, expression = filters(rng, objects, every)
            begin = time.perf_counter()
            answer = http.get(f"/{collection}", params={"$filter": expression, "$count": "true", "$top": "100"})
            timings.append((time.perf_counter() - begin) * 1000)
            answer.raise_for_status()
            counted += int(answer.json()["@odata.count"])
    return timings, counted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--error-every", type=int, default=100, help="every N-th object has an error (1: all)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print_figures(measure(args.objects, args.error_every, args.queries))


if __name__ == "__main__":
    main()
