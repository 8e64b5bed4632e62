"""End-to-end export throughput against two ceilings, same broker, pool and workers.

    python -m bench.throughput [--exports 6000] [--rounds 3] [--conflict-percent 1] [--workers 2]

Three runs take turns, `--rounds` times, `--exports` messages each: Celery's own no-op task (one
message on its own), the batched no-op (the same messages as the exports, taken by the same batcher
as `apply_export` and acknowledged one by one, with an empty body: the ceiling of the batched
design) and the exports themselves. Taking turns spreads a drift of this shared machine's speed over
all three; every reported rate and ratio is the median over the rounds. Each run is timed from the
first enqueue until the queue is empty and nothing is left unacknowledged.

`conflict_cost` is measured after the rounds: 0 % and 20 % conflicts take turns in halves.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.environment import BenchEnvironment, bench_environment, print_figures

TENANT = "bench"


def export_messages(count: int, conflict_percent: float, generation: int = 0) -> list[dict[str, Any]]:
    """New users with unique values; every k-th one asks for its neighbour's UPN and address."""
    every = round(100 / conflict_percent) if conflict_percent else 0
    messages = []
    for i in range(count):
        value = i - 1 if every and i % every == every - 1 else i
        messages.append(
            {
                "tenant": TENANT,
                "sourceAnchor": f"g{generation}-u{i}",
                "objectClass": "User",
                "operation": "add",
                "sequence": 1,
                "attributes": {
                    "displayName": f"User {i}",
                    "userPrincipalName": f"g{generation}-u{value}@bench.test",
                    "proxyAddresses": [f"SMTP:g{generation}-u{value}@bench.test", f"X500:/o=bench/cn={i}"],
                },
            }
        )
    return messages


def _drained(redis: Any, queue: str) -> bool:
    return not redis.llen(queue) and not redis.hlen("unacked")


def timed_run(env: BenchEnvironment, task: str, kwargs: Iterable[dict[str, Any]], queue: str = "exports") -> float:
    """Seconds from the first enqueue to an empty queue with nothing unacknowledged."""
    from redis import Redis

    from shared.exports.producer import producer_app
    from shared.settings import get_settings

    app = producer_app(get_settings())
    redis = Redis.from_url(env.redis_url)
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for item in kwargs:
            app.send_task(task, kwargs=item, queue=queue, producer=producer)
    while not _drained(redis, queue):
        time.sleep(0.005)
    return time.perf_counter() - started


def reset_store() -> None:
    from sqlalchemy import text

    from shared.store.engine import get_engine

    with get_engine().begin() as connection:
        connection.execute(
            text("TRUNCATE directory_objects, claimed_values, provisioning_errors, conflict_events, failed_exports")
        )


def measure(exports: int, conflict_percent: float, workers: int, rounds: int = 3) -> dict[str, float]:
    """The three runs `rounds` times in turn, then the conflict cost; medians of the rounds."""
    with bench_environment() as env:
        from harness.local_services import Workers
        from shared.messaging import APPLY_EXPORT, NOOP, NOOP_BATCHED, export_kwargs
        from shared.store.engine import transaction
        from shared.tenants.registry import TenantSpec, create_tenant

        with transaction() as session:
            create_tenant(session, TenantSpec(TENANT, "bench.onmicrosoft.com"))
        per_round: list[dict[str, float]] = []
        with Workers(env.process_env(), env.workdir, nodes=1, concurrency=workers) as pool:
            for round_number in range(rounds):
                kwargs = [
                    export_kwargs(m, tenant=TENANT) for m in export_messages(exports, conflict_percent, round_number)
                ]
                noop_s = timed_run(env, NOOP, ({} for _ in range(exports)))
                batched_s = timed_run(env, NOOP_BATCHED, kwargs)
                reset_store()
                exports_s = timed_run(env, APPLY_EXPORT, kwargs)
                per_round.append(
                    {"noop": exports / noop_s, "batched_noop": exports / batched_s, "exports": exports / exports_s}
                )
                print(
                    f"round {round_number + 1}/{rounds}: no-op {exports / noop_s:.1f}/s, "
                    f"batched no-op {exports / batched_s:.1f}/s, exports {exports / exports_s:.1f}/s",
                    flush=True,
                )
            conflict_cost = _conflict_cost(env, exports, rounds)
            rss = max(_peak_rss_mb(pid) for pid in _worker_pids(pool))

    def median(figure: Callable[[dict[str, float]], float]) -> float:
        return statistics.median(figure(r) for r in per_round)

    return {
        "exports": exports,
        "rounds": rounds,
        "workers": workers,
        "exports_per_s": round(median(lambda r: r["exports"]), 1),
        "noop_tasks_per_s": round(median(lambda r: r["noop"]), 1),
        "batched_noop_per_s": round(median(lambda r: r["batched_noop"]), 1),
        "ratio": round(median(lambda r: r["exports"] / r["noop"]), 3),
        "exports_vs_batched_noop": round(median(lambda r: r["exports"] / r["batched_noop"]), 3),
        "conflict_cost": round(conflict_cost, 3),
        "worker_rss_mb": round(rss, 1),
    }


def _conflict_cost(env: BenchEnvironment, exports: int, rounds: int) -> float:
    """The slowdown at 20 % conflicts against 0 %: the two take turns in halves, so a drift of the
    machine's speed weighs on both alike."""
    from shared.messaging import APPLY_EXPORT, export_kwargs

    seconds = {0.0: 0.0, 20.0: 0.0}
    for generation, percent in enumerate((0.0, 20.0, 0.0, 20.0), start=rounds):
        reset_store()
        messages = export_messages(exports // 2, percent, generation)
        seconds[percent] += timed_run(env, APPLY_EXPORT, (export_kwargs(m, tenant=TENANT) for m in messages))
    rates = {percent: 2 * (exports // 2) / spent for percent, spent in seconds.items()}
    return (rates[0.0] - rates[20.0]) / rates[0.0]


def _worker_pids(pool: Any) -> list[int]:
    """The worker main processes and their pool children."""
    pids = []
    for process in pool.processes:
        pids.append(process.pid)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
    return pids


def _peak_rss_mb(pid: int) -> float:
    """VmHWM, the peak resident set of a process: what one worker process needs at most."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exports", type=int, default=6_000, help="messages in each run of each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conflict-percent", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    figures = measure(args.exports, args.conflict_percent, args.workers, args.rounds)
    print_figures(figures)


if __name__ == "__main__":
    main()
