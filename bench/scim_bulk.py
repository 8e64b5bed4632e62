"""Objects per second through SCIM `/Bulk` against `syncguard post --wait` of the same objects.

A fresh bench database and Redis, two real worker nodes and a real `uvicorn api.app:app`. The same
N users (distinct UPNs and addresses) go in twice, into two tenants: as /Bulk requests of
`--per-request` operations each (every request waits until its exports are applied, as a SCIM
client sees it), and as one `syncguard post --wait` of N export lines. Both figures include the
workers applying every export; the difference is what the SCIM layer costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.environment import bench_environment, print_figures
from bench.junk_flood import running_api

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
DIRECTORY = "urn:syncguard:scim:schemas:extension:directory:2.0"


def _user(n: int) -> dict[str, object]:
    return {
        "schemas": [USER, DIRECTORY],
        "externalId": f"u{n:07}",
        "userName": f"user{n:07}@contoso.com",
        "displayName": f"User {n:07}",
        "emails": [{"value": f"user{n:07}@contoso.com", "primary": True}],
        DIRECTORY: {"proxyAddresses": [f"SMTP:user{n:07}@contoso.com"]},
    }


def measure(users: int, per_request: int) -> dict[str, float]:
    import httpx

    from harness.local_services import Workers

    with bench_environment() as env:
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant
        from shared.tenants.tokens import issue_token

        with transaction() as session:
            secret = issue_token(
                session, create_tenant(session, TenantSpec("scimbench", "scimbench.onmicrosoft.com"))
            ).secret
            create_tenant(session, TenantSpec("postbench", "postbench.onmicrosoft.com"))
        with Workers(env.process_env(), env.workdir, nodes=2, concurrency=2), running_api(env) as (url, _pid):
            headers = {"Authorization": f"Bearer {secret}"}
            with httpx.Client(base_url=f"{url}/scim/v2", headers=headers, timeout=600) as http:
                started = time.perf_counter()
                for first in range(0, users, per_request):
                    operations = [
                        {"method": "POST", "path": "/Users", "bulkId": f"b{n}", "data": _user(n)}
                        for n in range(first, min(first + per_request, users))
                    ]
                    answer = http.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
                    answer.raise_for_status()
                    assert all(r["status"] == "201" for r in answer.json()["Operations"]), answer.text[:500]
                bulk_s = time.perf_counter() - started
            lines = "".join(
                json.dumps(
                    {
                        "tenant": "postbench",
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
                + "\n"
                for n in range(users)
            )
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "shared.cli", "post", "--wait", "-"],
                input=lines,
                text=True,
                env=env.process_env(),
                check=True,
                capture_output=True,
            )
            post_s = time.perf_counter() - started
    return {
        "users": users,
        "per_request": per_request,
        "scim_bulk_objects_per_s": round(users / bulk_s, 1),
        "syncguard_post_objects_per_s": round(users / post_s, 1),
        "scim_over_post": round(post_s / bulk_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--per-request", type=int, default=1000)
    arguments = parser.parse_args()
    print_figures(measure(arguments.users, arguments.per_request))


if __name__ == "__main__":
    main()
