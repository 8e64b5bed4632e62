"""How the sweep and the `errors list` query cost grows with the tables: 10,000, 100,000, 1,000,000.

    python -m bench.growth [--quick] [--queries 200] [--free-percent 1]

For each size, bench/sweep.py's run (that many open quarantines, `--free-percent` of them resolved,
the full sweep the beat task runs) and bench/query.py's run (that many entries, the p99 of
`--queries` searches), each on a fresh bench database built inside PostgreSQL. `--quick` runs
1,000, 5,000 and 20,000 under the same keys (`sweep_s_10k` is then the smallest size's), so a
CI-sized run carries them all. Prints a table, then one JSON line.

Growth is read per unit: a sweep resolving 1 % does ten times the releases at ten times the size, so
`sweep_ms_per_release_*` says whether one release costs more in larger tables; the query's p99 should
not grow at all.

Run time on the busy 2-core machine (load 6-12): full 1,274 s (the two 1,000,000 builds 830 s of it,
the 1,000,000 sweep 229 s), `--quick` about 2 minutes. Too long for a 10-minute `bench/run` in full.
"""

from __future__ import annotations

import argparse
import json

from bench import query, sweep

FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 5_000, 20_000)
LABELS = ("10k", "100k", "1m")


def measure(quick: bool = False, queries: int = 200, free_percent: float = 1.0) -> dict[str, float]:
    sizes = QUICK_SIZES if quick else FULL_SIZES
    figures: dict[str, float] = {"growth_quick": float(quick)}
    for label, size in zip(LABELS, sizes, strict=True):
        swept = sweep.measure(size, free_percent)
        queried = query.measure(size, queries)
        figures[f"growth_size_{label}"] = size
        figures[f"sweep_s_{label}"] = swept["sweep_s"]
        figures[f"sweep_ms_per_release_{label}"] = round(1000 * swept["sweep_s"] / max(1, swept["released"]), 2)
        figures[f"errors_list_p50_ms_{label}"] = queried["query_p50_ms"]
        figures[f"errors_list_p99_ms_{label}"] = queried["query_p99_ms"]
        figures[f"growth_setup_s_{label}"] = round(swept["setup_s"] + queried["setup_s"], 1)
    first, last = LABELS[0], LABELS[-1]
    figures["sweep_per_release_growth"] = round(
        figures[f"sweep_ms_per_release_{last}"] / figures[f"sweep_ms_per_release_{first}"], 2
    )
    figures["errors_list_p99_growth"] = round(
        figures[f"errors_list_p99_ms_{last}"] / figures[f"errors_list_p99_ms_{first}"], 2
    )
    return figures


def print_table(figures: dict[str, float]) -> None:
    """One row per size: the sweep, one release's share of it, the query's p50 and p99, the build."""
    print(f"{'size':>10}  {'sweep s':>8}  {'ms/release':>10}  {'list p50 ms':>11}  {'list p99 ms':>11}  {'build s':>7}")
    for label in LABELS:
        print(
            f"{int(figures[f'growth_size_{label}']):>10,}  {figures[f'sweep_s_{label}']:>8}  "
            f"{figures[f'sweep_ms_per_release_{label}']:>10}  {figures[f'errors_list_p50_ms_{label}']:>11}  "
            f"{figures[f'errors_list_p99_ms_{label}']:>11}  {figures[f'growth_setup_s_{label}']:>7}"
        )
    print(
        f"growth {int(figures[f'growth_size_{LABELS[0]}']):,} -> {int(figures[f'growth_size_{LABELS[-1]}']):,}: "
        f"one release x{figures['sweep_per_release_growth']}, "
        f"errors list p99 x{figures['errors_list_p99_growth']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 / 5,000 / 20,000 under the same keys")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--free-percent", type=float, default=1.0)
    args = parser.parse_args()
    figures = measure(args.quick, args.queries, args.free_percent)
    print_table(figures)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
