"""A load run on loopback: 32 clients for 60 s against the real API, with real workers behind it.

    python -m bench.load [--seconds 60] [--users 32] [--workers 2] [--objects 2000]

It builds its own database (BENCH_DATABASE_URL, dropped and made again) and Redis, seeds a tenant
with `--objects` objects (a fifth of them quarantined on a shared value, some failed exports), starts
`celery -A workers.app worker` and one `uvicorn api.app:app` process, and lets locust's users loose
on it: each sends its next request as soon as the last one is answered, mixing the reads an admin's
tools make (the errors list, one object, the failed exports, `/healthz`) with posts of small export
bodies (three exports each, one of them contesting a shared UPN) that the workers apply meanwhile.

It prints, as the other benchmarks do, per request kind and overall: requests, p50 and p99 (from every
response time, not locust's rounded buckets), and the responses of 500 or above (the target is 0);
then the API process's resident memory before and after the run and its peak, and how many of the
posted exports the workers had applied 60 s after the last post. A bounded benchmark that prints
figures, not a timed test: nothing here fails on a number, apart from a response of 500 or above.

locust is a test extra (requirements-test.lock). Its gevent monkey-patches whatever imports it, so the
users run in a process of their own (spawned), and this one keeps plain threads for the services.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.environment import BenchEnvironment, bench_environment, percentile, print_figures

TENANT = "load"
POOL = [f"shared{i}@load.example" for i in range(20)]
KINDS = ("errors list", "object", "failures", "healthz", "post exports")
DRAIN_S = 60


@dataclass(frozen=True)
class Driven:
    """What the users saw: every response time (ms) and status per request kind, and what they posted."""

    times: dict[str, list[float]]
    statuses: dict[str, Counter[int]]
    batches: list[tuple[str, int]]  # (batch, exports accepted)
    seconds: float


def _seed(env: BenchEnvironment, objects: int) -> tuple[str, list[str]]:
    """The tenant, a token, and `objects` objects applied by the workers; returns the secret and anchors."""
    from redis import Redis

    from shared.exports.post_ledger import wait_for
    from shared.exports.producer import post_exports
    from shared.settings import get_settings
    from shared.store.engine import transaction
    from shared.tenants.registry import TenantSpec, create_tenant
    from shared.tenants.tokens import issue_token

    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=TENANT, initial_domain=f"{TENANT}.onmicrosoft.com"))
        secret = issue_token(session, tenant, name="bench").secret
    rng = random.Random(11)
    anchors = [f"seed-{i}" for i in range(objects)]
    lines = []
    for i, anchor in enumerate(anchors):
        upn = rng.choice(POOL) if i % 5 == 0 else f"{anchor}@load.example"
        attributes = {"displayName": f"Seed {i}", "userPrincipalName": upn, "proxyAddresses": [f"SMTP:{upn}"]}
        message = {"tenant": TENANT, "sourceAnchor": anchor, "objectClass": "User", "operation": "add"}
        lines.append(json.dumps({**message, "sequence": 1, "attributes": attributes}))
    lines += [json.dumps({"tenant": TENANT, "sourceAnchor": f"bad-{i}", "objectClass": "Robot"}) for i in range(50)]
    posted = post_exports(lines, get_settings())
    if not wait_for(Redis.from_url(env.redis_url), posted.batch, posted.enqueued, timeout_s=600):
        raise RuntimeError("the workers did not apply the seed exports within 600 s")
    return secret, anchors


@contextmanager
def _api(env: BenchEnvironment) -> Iterator[tuple[str, int]]:
    """`uvicorn api.app:app` as an operator starts it; yields its URL and process id."""
    from harness.local_services import uvicorn_api

    with uvicorn_api(env.process_env(), env.workdir / "api.log") as (url, process):
        yield url, process.pid


def _memory_mb(pid: int) -> dict[str, float]:
    """Resident now (VmRSS) and the peak so far (VmHWM) of one process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: round(int(fields[name].split()[0]) / 1024, 1) for name in ("VmRSS", "VmHWM")}


def drive(url: str, secret: str, anchors: list[str], seconds: float, users: int) -> Driven:
    """The locust users, for `seconds`; runs in a spawned process (gevent patches the one it is in)."""
    import gevent
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    times: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    batches: list[tuple[str, int]] = []
    serial = iter(range(1_000_000))
    auth = {"Authorization": f"Bearer {secret}"}
    base = f"/v1/tenants/{TENANT}"

    class Admin(FastHttpUser):  # type: ignore[misc]
        host = url
        wait_time = constant(0)

        def on_start(self) -> None:
            self.me, self.sequence, self.rng = next(serial), 0, random.Random(next(serial))

        @task(4)
        def errors_list(self) -> None:
            search = self.rng.choice(["", "&search=shared", "&propertyName=UserPrincipalName", "&orderBy=DisplayName"])
            self.client.get(f"{base}/provisioningErrors?top=50{search}", headers=auth, name="errors list")

        @task(3)
        def one_object(self) -> None:
            self.client.get(f"{base}/objects/{self.rng.choice(anchors)}", headers=auth, name="object")

        @task(2)
        def failures(self) -> None:
            self.client.get(f"{base}/failures", headers=auth, name="failures")

        @task(1)
        def healthz(self) -> None:
            self.client.get("/healthz", name="healthz")

        @task(2)
        def post_exports(self) -> None:
            self.sequence += 1
            lines = []
            for n in range(3):
                upn = self.rng.choice(POOL) if n == 0 else f"u{self.me}-{n}@load.example"
                attributes = {"displayName": f"User {self.me}-{n}", "userPrincipalName": upn}
                lines.append(
                    json.dumps(
                        {
                            "tenant": TENANT,
                            "sourceAnchor": f"load-{self.me}-{n}",
                            "objectClass": "User",
                            "operation": "add" if self.sequence == 1 else "update",
                            "sequence": self.sequence,
                            "attributes": attributes,
                        }
                    )
                )
            headers = {**auth, "Content-Type": "application/x-ndjson"}
            response = self.client.post(
                f"{base}/exports", data="\n".join(lines) + "\n", headers=headers, name="post exports"
            )
            if response.status_code == 202:
                answer = response.json()
                batches.append((answer["batch"], answer["accepted"]))

    environment = Environment(user_classes=[Admin])

    def record(name: str, response_time: float, response: Any = None, **_: Any) -> None:
        times[name].append(response_time)
        statuses[name][int(getattr(response, "status_code", 0) or 0)] += 1

    environment.events.request.add_listener(record)
    runner = environment.create_local_runner()
    started = time.monotonic()
    runner.start(users, spawn_rate=users)
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    return Driven(dict(times), dict(statuses), batches, time.monotonic() - started)


def _applied_after_run(env: BenchEnvironment, batches: list[tuple[str, int]]) -> int:
    """Posted exports the workers finished within DRAIN_S of the run's end."""
    from redis import Redis

    from shared.exports.post_ledger import done_count

    redis = Redis.from_url(env.redis_url)
    deadline = time.monotonic() + DRAIN_S
    while True:
        done = sum(min(done_count(redis, batch), accepted) for batch, accepted in batches)
        if done >= sum(accepted for _, accepted in batches) or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def measure(seconds: float, users: int, workers: int, objects: int) -> dict[str, float]:
    from harness.local_services import Workers

    with bench_environment() as env:
        with Workers(env.process_env(), env.workdir, nodes=1, concurrency=workers):
            secret, anchors = _seed(env, objects)
            with _api(env) as (url, pid):
                for path in ("/healthz", f"/v1/tenants/{TENANT}/failures"):
                    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {secret}"})
                    urllib.request.urlopen(request, timeout=30).close()  # warm: imports, pools, caches
                before = _memory_mb(pid)
                spawn = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                    driven = pool.submit(drive, url, secret, anchors, seconds, users).result()
                after = _memory_mb(pid)
            applied = _applied_after_run(env, driven.batches)
    return figures_of(driven, before, after, applied, users)


def figures_of(
    driven: Driven, before: dict[str, float], after: dict[str, float], applied: int, users: int
) -> dict[str, float]:
    figures: dict[str, float] = {"users": users, "seconds": round(driven.seconds, 1)}
    every: list[float] = []
    for kind in KINDS:
        times = driven.times.get(kind, [])
        every += times
        slug = kind.replace(" ", "_")
        figures[f"{slug}_requests"] = len(times)
        figures[f"{slug}_p50_ms"] = round(percentile(times, 50), 1) if times else 0.0
        figures[f"{slug}_p99_ms"] = round(percentile(times, 99), 1) if times else 0.0
    statuses: Counter[int] = sum(driven.statuses.values(), Counter())
    figures["requests"] = len(every)
    figures["requests_per_s"] = round(len(every) / driven.seconds, 1)
    figures["p50_ms"] = round(percentile(every, 50), 1)
    figures["p99_ms"] = round(percentile(every, 99), 1)
    figures["responses_5xx"] = sum(n for status, n in statuses.items() if status >= 500)
    figures["responses_4xx"] = sum(n for status, n in statuses.items() if 400 <= status < 500)
    figures["no_response"] = statuses.get(0, 0)
    figures["exports_accepted"] = sum(accepted for _, accepted in driven.batches)
    figures["exports_applied_60s_after"] = applied
    figures["api_rss_before_mb"] = before["VmRSS"]
    figures["api_rss_after_mb"] = after["VmRSS"]
    figures["api_rss_growth_mb"] = round(after["VmRSS"] - before["VmRSS"], 1)
    figures["api_rss_peak_mb"] = after["VmHWM"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one node)")
    parser.add_argument("--objects", type=int, default=2000, help="objects seeded before the run")
    args = parser.parse_args()
    figures = measure(args.seconds, args.users, args.workers, args.objects)
    print_figures(figures)
    if figures["responses_5xx"] or figures["no_response"]:
        sys.exit(f"{figures['responses_5xx']} response(s) of 500 or above, {figures['no_response']} without an answer")


if __name__ == "__main__":
    main()
