"""Objects per second through SCIM `/Bulk` against `syncguard post --wait` of the same objects.

    python -m bench.scim_bulk [--users 5000] [--per-request 1000] [--workers 2]

A fresh bench database and Redis, one real worker node of `--workers` processes and a real
`uvicorn api.app:app`. The same N users (distinct UPNs and addresses) go in twice, into two tenants:
as /Bulk requests of `--per-request` operations each (every request waits until its exports are
applied, as a SCIM client sees it: `scim_bulk_per_s`), and as real `syncguard post --wait` processes
of export lines (`cli_post_per_s`, each process's start included). The two take turns in halves.
Both figures include the workers applying every export; the difference is what the SCIM layer
costs. The target is `scim_bulk_per_s` >= 0.8 x `cli_post_per_s`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from bench.environment import bench_environment, print_figures
from bench.junk_flood import running_api

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DIRECTORY = "urn:syncguard:scim:schemas:extension:directory:2.0"
SCIM_TENANT = "scimbench"
CLI_TENANT = "postbench"


def _user(n: int) -> dict[str, object]:
    return {
        "schemas": [USER, DIRECTORY],
        "externalId": f"u{n:07}",
        "userName": f"user{n:07}@contoso.com",
        "displayName": f"User {n:07}",
        "emails": [{"value": f"user{n:07}@contoso.com", "primary": True}],
        DIRECTORY: {"proxyAddresses": [f"SMTP:user{n:07}@contoso.com"]},
    }


def _export_line(n: int) -> str:
    """User n as the export line `syncguard post` reads: the same values the SCIM user carries."""
    return json.dumps(
        {
            "tenant": CLI_TENANT,
            "sourceAnchor": f"u{n:07}",
            "objectClass": "User",
            "operation": "add",
            "sequence": 1,
            "attributes": {
                "displayName": f"User {n:07}",
                "userPrincipalName": f"user{n:07}@contoso.com",
                "mail": f"user{n:07}@contoso.com",
                "proxyAddresses": [f"SMTP:user{n:07}@contoso.com"],
            },
        }
    )


def _bulk(http: Any, users: range, per_request: int) -> float:
    """Seconds to create `users` through /Bulk, `per_request` operations a request, each answered once
    its exports are applied."""
    started = time.perf_counter()
    for first in range(users.start, users.stop, per_request):
        operations = [
            {"method": "POST", "path": "/Users", "bulkId": f"b{n}", "data": _user(n)}
            for n in range(first, min(first + per_request, users.stop))
        ]
        answer = http.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
        answer.raise_for_status()
        assert all(r["status"] == "201" for r in answer.json()["Operations"]), answer.text[:500]
    return time.perf_counter() - started


def _post(env: Any, users: range) -> float:
    """Seconds for one real `syncguard post --wait -` process to post `users` and see them applied."""
    lines = "".join(_export_line(n) + "\n" for n in users)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "shared.cli", "post", "--wait", "-"],
        input=lines,
        text=True,
        env=env.process_env(),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def measure(users: int = 5000, per_request: int = 1000, workers: int = 2) -> dict[str, float]:
    import httpx

    from harness.local_services import Workers

    with bench_environment() as env:
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant
        from shared.tenants.tokens import issue_token

        with transaction() as session:
            secret = issue_token(
                session, create_tenant(session, TenantSpec(SCIM_TENANT, "scimbench.onmicrosoft.com"))
            ).secret
            create_tenant(session, TenantSpec(CLI_TENANT, "postbench.onmicrosoft.com"))
        half = users // 2
        bulk_s = post_s = 0.0
        with (
            Workers(env.process_env(), env.workdir, nodes=1, concurrency=workers),
            running_api(env) as (url, _pid),
            httpx.Client(base_url=f"{url}/scim/v2", headers={"Authorization": f"Bearer {secret}"}, timeout=600) as http,
        ):
            # The two faces take turns in halves, so a drift of the machine's speed weighs on both alike.
            for part in (range(0, half), range(half, users)):
                bulk_s += _bulk(http, part, per_request)
                post_s += _post(env, part)
    return {
        "scim_bulk_per_s": round(users / bulk_s, 1),
        "cli_post_per_s": round(users / post_s, 1),
        "scim_over_cli": round(post_s / bulk_s, 3),
        "scim_users": users,
        "scim_per_request": per_request,
        "scim_workers": workers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--per-request", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one node)")
    arguments = parser.parse_args()
    print_figures(measure(arguments.users, arguments.per_request, arguments.workers))


if __name__ == "__main__":
    main()
