"""How much memory one request of junk takes in the API: 300,000 lines that are not exports.

    python -m bench.junk_flood [--lines 300000]

A real `uvicorn api.app:app` on the bench services gets one small post to warm up, then one body of
`--lines` junk lines (two bytes each). The figure is the growth of the API process's peak resident
set (VmHWM) over its resident set just before the flood: what one request costs the pod at most.
The landed code grew by 1,058 MB for 300,000 lines (issue 11); the pod's limit is 512 Mi.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.environment import BenchEnvironment, bench_environment, print_figures

TENANT = "flood"


def memory_kib(pid: int, field: str) -> int:
    """A `/proc/<pid>/status` figure in KiB: `VmRSS` now, `VmHWM` the peak since the process began."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def junk(lines: int) -> bytes:
    """Lines that are no export at all: each is rejected and kept as a failed export of the tenant."""
    return b"x\n" * lines


@contextmanager
def running_api(env: BenchEnvironment) -> Iterator[tuple[str, int]]:
    """`uvicorn api.app:app` as an operator starts it; yields its URL and process id."""
    from harness.local_services import uvicorn_api

    with uvicorn_api(env.process_env(), env.workdir / "api.log") as (url, process):
        yield url, process.pid


def measure(lines: int) -> dict[str, float]:
    import httpx

    with bench_environment() as env:
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant
        from shared.tenants.tokens import issue_token

        with transaction() as session:
            secret = issue_token(session, create_tenant(session, TenantSpec(TENANT, "flood.onmicrosoft.com"))).secret
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/x-ndjson"}
        with running_api(env) as (url, pid), httpx.Client(base_url=url, timeout=600, headers=headers) as http:
            path = f"/v1/tenants/{TENANT}/exports"
            http.post(path, content=junk(1_000)).raise_for_status()  # imports, pools, caches: not the flood's cost
            before = memory_kib(pid, "VmRSS")
            started = time.perf_counter()
            response = http.post(path, content=junk(lines))
            seconds = time.perf_counter() - started
            peak = memory_kib(pid, "VmHWM")
            response.raise_for_status()
            body = response.json()
    return {
        "junk_lines": lines,
        "body_kb": round(len(junk(lines)) / 1000, 1),
        "rejected": body["rejected"],
        "rejections_listed": len(body["rejections"]),
        "api_rss_before_mb": round(before / 1024, 1),
        "api_growth_mb": round((peak - before) / 1024, 1),
        "post_s": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300_000)
    print_figures(measure(parser.parse_args().lines))


if __name__ == "__main__":
    main()
