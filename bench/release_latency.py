"""Fast-path release latency: from the commit that frees a value to the waiter holding it.

    python -m bench.release_latency [--releases 200] [--workers 2]

Each round deletes one holder while its waiter sits quarantined; the latency is the waiter's claim
time minus the holder's deletion time, both stamped inside their transactions (the deletion stamp
is taken before its commit, so the figure errs on the slow side). Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime

from bench.environment import bench_environment, percentile, print_figures


def _claim_time(tenant_id: int, anchor: str, key: str) -> datetime | None:
    from sqlalchemy import select

    from shared.store.engine import transaction
    from shared.store.tables import ClaimedValue, DirectoryObject

    with transaction() as session:
        return session.scalar(
            select(ClaimedValue.claimed_at)
            .join(DirectoryObject, DirectoryObject.id == ClaimedValue.object_pk)
            .where(
                DirectoryObject.tenant_id == tenant_id, DirectoryObject.source_anchor == anchor, ClaimedValue.key == key
            )
        )


def _deleted_at(tenant_id: int, anchor: str) -> datetime:
    from sqlalchemy import select

    from shared.store.engine import transaction
    from shared.store.tables import DirectoryObject

    with transaction() as session:
        moment = session.scalar(
            select(DirectoryObject.updated_at).where(
                DirectoryObject.tenant_id == tenant_id, DirectoryObject.source_anchor == anchor
            )
        )
    assert moment is not None
    return moment


def measure(releases: int, workers: int) -> dict[str, float]:
    with bench_environment() as env:
        from redis import Redis

        from harness.local_services import Workers
        from shared.exports.post_ledger import wait_for
        from shared.exports.producer import post_exports
        from shared.settings import get_settings
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant

        settings = get_settings()
        redis = Redis.from_url(env.redis_url)
        with transaction() as session:
            tenant_id = create_tenant(session, TenantSpec("bench", "bench.onmicrosoft.com")).id

        def post(lines: list[str]) -> None:
            result = post_exports(lines, settings)
            assert wait_for(redis, result.batch, result.enqueued, 600), "exports did not finish"

        def user(anchor: str, upn: str, sequence: int = 1, operation: str = "add") -> str:
            message = {
                "tenant": "bench",
                "sourceAnchor": anchor,
                "objectClass": "User",
                "operation": operation,
                "sequence": sequence,
                "attributes": {} if operation == "delete" else {"userPrincipalName": upn},
            }
            return json.dumps(message)

        with Workers(env.process_env(), env.workdir, nodes=1, concurrency=workers):
            post([user(f"holder-{i}", f"r{i}@bench.test") for i in range(releases)])
            post([user(f"waiter-{i}", f"r{i}@bench.test") for i in range(releases)])
            latencies: list[float] = []
            for i in range(releases):
                post([user(f"holder-{i}", "", 2, "delete")])
                deadline = time.monotonic() + 30
                while (claimed := _claim_time(tenant_id, f"waiter-{i}", f"r{i}@bench.test")) is None:
                    assert time.monotonic() < deadline, f"waiter-{i} never got its value"
                    time.sleep(0.002)
                latencies.append((claimed - _deleted_at(tenant_id, f"holder-{i}")).total_seconds() * 1000)
    return {
        "releases": releases,
        "release_p50_ms": round(percentile(latencies, 50), 1),
        "release_p99_ms": round(percentile(latencies, 99), 1),
        "release_max_ms": round(max(latencies), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (prefork concurrency)")
    args = parser.parse_args()
    figures = measure(args.releases, args.workers)
    print_figures(figures)


if __name__ == "__main__":
    main()
