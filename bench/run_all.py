"""Every benchmark in one run: a readable table with each target met or not, then one JSON line.

    bench/run [--quick] [--workers 2] [--exports 6000] [--conflict-percent 1]

Each benchmark runs in a fresh interpreter (`alone`). `--quick` is a small run for CI-sized machines
with the same keys; its verdicts are at small sizes, a smoke test and no measurement. `--exports` is
the size of each of the throughput benchmark's runs (three rounds of no-op, batched no-op, exports).
The full run is sized to finish in under 10 minutes on this 2-core machine when it is quiet.
`bench/run --initial-load` is bench/initial_load.py's own run with its own JSON line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

# The keys of the JSON line, in order: issue 6's, then issue 14's. The one list of them.
KEYS = (
    "exports_per_s",
    "noop_tasks_per_s",
    "ratio",
    "conflict_cost",
    "release_p50_ms",
    "release_p99_ms",
    "sweep_s",
    "query_p99_ms",
    "worker_rss_mb",
    "workers",
    "exports",
    "batched_noop_per_s",
    "exports_vs_batched_noop",
    "api_post_per_s",
    "scim_bulk_per_s",
    "cli_post_per_s",
    "graph_query_p99_ms",
    "sweep_s_10k",
    "sweep_s_100k",
    "sweep_s_1m",
    "errors_list_p99_ms_10k",
    "errors_list_p99_ms_100k",
    "errors_list_p99_ms_1m",
    "run_s",
)


@dataclass(frozen=True)
class Target:
    """`key op bound`, or `key op bound x other` when the bound is a share of another figure."""

    key: str
    op: str
    bound: float
    issue: int
    times: str | None = None
    where: str = ""

    def describe(self, quick: bool) -> str:
        """The target as the issue says it; a quick run measures at other sizes than `where` says."""
        bound = f"{self.bound:g}" if self.times is None else f"{self.bound:g} x {self.times}"
        return f"{self.key} {self.op} {bound}{'' if quick else self.where} (issue {self.issue})"

    def met(self, figures: dict[str, float]) -> bool | None:
        value = figures.get(self.key)
        scale = 1.0 if self.times is None else figures.get(self.times)
        if value is None or scale is None:
            return None
        bound = self.bound * scale
        return value >= bound if self.op == ">=" else value < bound


TARGETS = (
    Target("ratio", ">=", 1.0, 14),
    Target("exports_vs_batched_noop", ">=", 0.8, 14),
    Target("api_post_per_s", ">=", 3, 14, times="exports_per_s"),
    Target("scim_bulk_per_s", ">=", 0.8, 14, times="cli_post_per_s"),
    Target("graph_query_p99_ms", "<", 50, 14, where=" over 1,000,000 objects"),
    Target("sweep_s", "<", 3, 14, where=" over 100,000 quarantines"),
    Target("worker_rss_mb", "<", 200, 14),
    Target("ratio", ">=", 0.75, 6),
    Target("conflict_cost", "<", 0.10, 6),
    Target("release_p99_ms", "<", 1000, 6),
    Target("sweep_s", "<", 10, 6, where=" over 100,000 quarantines"),
    Target("query_p99_ms", "<", 50, 6, where=" over 1,000,000 entries"),
)

# Issue 14's targets that bench/run --initial-load measures and prints, not this run.
INITIAL_LOAD_TARGETS = (
    "initial_load_per_s >= 1.0 x the no-op rate of the same run",
    "initial_load_growth >= 0.8",
    "producer_rss_mb < 150 on a 1,000,000-line file",
)


@dataclass(frozen=True)
class Bench:
    """One benchmark module's `measure(...)`, with its arguments in a full and in a quick run."""

    module: str
    full: dict[str, Any]
    quick: dict[str, Any]


def plan(quick: bool, workers: int, exports: int | None, conflict_percent: float) -> list[Bench]:
    """What a run measures, and at which sizes. bench/growth.py's 100,000 sweep and 1,000,000 query
    are bench/sweep.py's and bench/query.py's runs: `sweep_s` and `query_p99_ms` come from them."""
    throughput = {"conflict_percent": conflict_percent, "workers": workers, "rounds": 3}
    return [
        Bench(
            "bench.throughput",
            {"exports": exports or 6_000, **throughput},
            {"exports": exports or 1_000, **throughput},
        ),
        Bench("bench.release_latency", {"releases": 200, "workers": workers}, {"releases": 50, "workers": workers}),
        Bench("bench.growth", {"quick": False, "queries": 200}, {"quick": True, "queries": 50}),
        Bench(
            "bench.api_post", {"bodies": 40, "lines": 1000, "clients": 4}, {"bodies": 4, "lines": 1000, "clients": 4}
        ),
        Bench(
            "bench.scim_bulk",
            {"users": 5_000, "per_request": 1000, "workers": workers},
            {"users": 500, "per_request": 100, "workers": workers},
        ),
        Bench(
            "bench.graph_query",
            {"objects": 1_000_000, "every": 100, "queries": 200},
            {"objects": 20_000, "every": 100, "queries": 50},
        ),
    ]


def alone(measure: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one benchmark in a fresh interpreter, as it runs on its own: nothing an earlier one left
    in this process (threads, connection pools, heap) weighs on its figures. In one process the
    query benchmark measured a p99 of 57-62 ms after the others, and 38-42 ms on its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, *args, **kwargs).result()


def run(bench: Bench, quick: bool) -> dict[str, float]:
    """One benchmark's figures, the time it took printed; nothing (and its traceback) when it fails."""
    try:
        measure = importlib.import_module(bench.module).measure
    except (ImportError, AttributeError) as exc:
        print(f"{bench.module}: skipped ({exc})", flush=True)
        return {}
    started = time.perf_counter()
    try:
        figures = alone(measure, **(bench.quick if quick else bench.full))
    except Exception:  # one failing benchmark must not cost the others' figures
        traceback.print_exc()
        print(f"{bench.module}: FAILED after {time.perf_counter() - started:.0f} s", flush=True)
        return {}
    print(f"{bench.module}: {time.perf_counter() - started:.0f} s", flush=True)
    return figures


def print_table(figures: dict[str, float], quick: bool) -> None:
    """Every figure of KEYS, then every target with its verdict."""
    print(f"\nsyncguard benchmark ({'quick: small sizes, a smoke run' if quick else 'full'}, {figures['run_s']:.0f} s)")
    width = max(len(key) for key in KEYS) + 2
    for key in KEYS:
        value = figures.get(key)
        print(f"{key:<{width}}{'missing' if value is None else value:>12}")
    print(f"\n{'target':<74}verdict")
    for target in TARGETS:
        met = target.met(figures)
        verdict = "not measured" if met is None else "met" if met else "NOT met"
        print(f"{target.describe(quick):<74}{verdict}")
    for text in INITIAL_LOAD_TARGETS:
        print(f"{text + ' (issue 14)':<74}measured by bench/run --initial-load")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--exports", type=int, default=None, help="exports in each throughput run")
    parser.add_argument("--conflict-percent", type=float, default=1.0)
    args = parser.parse_args()
    started = time.perf_counter()

    figures: dict[str, float] = {}
    for bench in plan(args.quick, args.workers, args.exports, args.conflict_percent):
        figures.update(run(bench, args.quick))
    for key, source in (("sweep_s", "sweep_s_100k"), ("query_p99_ms", "errors_list_p99_ms_1m")):
        if source in figures:
            figures[key] = figures[source]
    figures["run_s"] = round(time.perf_counter() - started, 1)

    print_table(figures, args.quick)
    print(json.dumps({key: figures.get(key) for key in KEYS}))
    missing = [key for key in KEYS if key not in figures]
    if missing:
        sys.exit(f"missing figures: {', '.join(missing)}")


if __name__ == "__main__":
    main()
