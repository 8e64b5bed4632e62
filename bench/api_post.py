"""Exports accepted per second by `POST /v1/tenants/{t}/exports`, from concurrent clients.

    python -m bench.api_post [--bodies 40] [--lines 1000] [--clients 4]

A fresh bench database and Redis and one real `uvicorn api.app:app`, as an operator starts it; no
worker runs, so "accepted" is what the API answers: validated, filed in the post ledger and enqueued
(the 202's `accepted`). `--clients` threads, each with its own connection, post `--bodies` bodies of
`--lines` JSON lines between them, back to back; the clock runs from the first request to the last
answer. The same number of lines then goes through one real `syncguard post -` process (no `--wait`,
its interpreter start included) for contrast. The target is `api_post_per_s` >= 3 x the
`exports_per_s` of bench/throughput.py: ingest is never what limits an initial load.

Run time on the busy 2-core machine (load 7-11): 390 s for the default 40,000 lines (half of it the
CLI's contrast run); `--bodies 10` takes a quarter.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from typing import Any

from bench.environment import bench_environment, percentile, print_figures
from bench.junk_flood import running_api
from bench.throughput import export_messages

API_TENANT = "apibench"
CLI_TENANT = "clibench"


def export_lines(tenant: str, count: int, generation: int) -> bytes:
    """`count` JSON lines of new users (1 % conflicting, as the throughput bench posts them)."""
    return "".join(
        json.dumps({**message, "tenant": tenant}) + "\n" for message in export_messages(count, 1.0, generation)
    ).encode()


def _post_all(url: str, headers: dict[str, str], bodies: list[bytes], clients: int) -> tuple[int, list[float]]:
    """Post every body from `clients` threads taking the next body as they finish one; the accepted
    total and each request's milliseconds."""
    import httpx

    lock = threading.Lock()
    pending = list(reversed(bodies))
    accepted: list[int] = []
    latencies: list[float] = []
    failures: list[BaseException] = []

    def client() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=600) as http:
            while True:
                with lock:
                    if not pending or failures:
                        return
                    body = pending.pop()
                begin = time.perf_counter()
                try:
                    answer = http.post(f"/v1/tenants/{API_TENANT}/exports", content=body)
                    answer.raise_for_status()
                except BaseException as exc:  # handed to the main thread, raised there
                    with lock:
                        failures.append(exc)
                    return
                with lock:
                    latencies.append((time.perf_counter() - begin) * 1000)
                    accepted.append(int(answer.json()["accepted"]))

    threads = [threading.Thread(target=client, name=f"client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return sum(accepted), latencies


def measure(bodies: int = 40, lines: int = 1000, clients: int = 4) -> dict[str, float]:
    with bench_environment() as env:
        from redis import Redis

        from shared.messaging import EXPORTS_QUEUE
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant
        from shared.tenants.tokens import issue_token

        with transaction() as session:
            secret = issue_token(session, create_tenant(session, TenantSpec(API_TENANT, "api.onmicrosoft.com"))).secret
            create_tenant(session, TenantSpec(CLI_TENANT, "cli.onmicrosoft.com"))
        payloads = [export_lines(API_TENANT, lines, generation) for generation in range(1, bodies + 1)]
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/x-ndjson"}
        with running_api(env) as (url, _pid):
            # Imports, pools, the tenant cache: the first request's cost is no part of the rate.
            warm, _ = _post_all(url, headers, [export_lines(API_TENANT, 100, 0)], 1)
            started = time.perf_counter()
            accepted, latencies = _post_all(url, headers, payloads, clients)
            api_s = time.perf_counter() - started
        queued = Redis.from_url(env.redis_url).llen(EXPORTS_QUEUE)
        assert accepted == bodies * lines, f"accepted {accepted} of {bodies * lines}"
        assert queued == warm + accepted, f"{queued} messages on the queue for {warm + accepted} accepted"

        cli_input = b"".join(export_lines(CLI_TENANT, lines, generation) for generation in range(1, bodies + 1))
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "shared.cli", "post", "-"],
            input=cli_input,
            env=env.process_env(),
            check=True,
            capture_output=True,
        )
        cli_s = time.perf_counter() - started
    return {
        "api_post_per_s": round(accepted / api_s, 1),
        "api_request_p50_ms": round(percentile(latencies, 50), 1),
        "api_request_p99_ms": round(percentile(latencies, 99), 1),
        "cli_post_accepted_per_s": round(accepted / cli_s, 1),
        "api_post_exports": accepted,
        "api_post_clients": clients,
        "api_post_lines_per_body": lines,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=40)
    parser.add_argument("--lines", type=int, default=1000, help="exports in one request body")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    args: Any = parser.parse_args()
    print_figures(measure(args.bodies, args.lines, args.clients))


if __name__ == "__main__":
    main()
