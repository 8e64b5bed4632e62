"""The initial load: a whole directory posted at once by a real `syncguard post --wait`, as a platform
team's first run does.

    bench/run --initial-load [N] [--quick] [--workers 2] [--plot PATH]
    python -m bench.initial_load [N] [--quick] [--producer-only]

N objects (default 1,000,000; `--quick`: 5,000) are written to a JSON-lines file
(`bench.initial_load_file`: users 80 %, groups 15 %, contacts 5 %, 1 % conflicting, about 1.5 KB a
line), then `syncguard post FILE --wait` runs as its own process against 2 worker processes on
PostgreSQL, the tenant's resiliency features on. Before the load the same workers run Celery's no-op
task, the ceiling for one message per export. While the load runs, the exports done so far (the
workers' running totals in Redis) are sampled every second; `initial_load_growth` is the rate over
the last tenth of the load divided by the rate over the first tenth (from the first export done),
so below 1 means an export costs more as the tables grow.

`--producer-only` posts the file without workers and without --wait, to measure the producer alone
(its peak memory on a 1,000,000-line file, and how fast it enqueues); the messages stay in the
private Redis, which is thrown away.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.environment import BenchEnvironment, bench_environment, print_figures
from bench.initial_load_file import LoadFile, write_load_file

TENANT = "contoso"
QUICK_OBJECTS = 5_000
SAMPLE_INTERVAL_S = 1.0
QUICK_SAMPLE_INTERVAL_S = 0.2  # a quick load lasts seconds: finer samples, or a tenth is one sample
REPO = Path(__file__).resolve().parent.parent
DOCS_PLOT = REPO / "docs" / "img" / "initial-load.png"
TARGETS = {
    "initial_load_vs_noop": (">=", 1.0),
    "initial_load_growth": (">=", 0.8),
    "producer_rss_mb": ("<", 150),
    "worker_rss_mb": ("<", 200),
}


@dataclass
class Samples:
    """What the sampler saw each interval: seconds since the post started, exports done, messages in Redis."""

    at_s: list[float] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    enqueued: list[int] = field(default_factory=list)


def syncguard_command() -> list[str]:
    """The installed `syncguard` script beside this interpreter (a Python process itself), else `-m`."""
    script = Path(sys.executable).parent / "syncguard"
    return [str(script)] if script.exists() else [sys.executable, "-m", "shared.cli"]


def exports_done(redis: Any) -> int:
    """Exports the workers finished, whatever the outcome: their running totals (`shared.metrics.activity`)."""
    from shared.metrics.activity import totals

    return sum(totals(redis).exports_by_outcome.values())


def messages_enqueued(redis: Any, queue: str = "exports") -> int:
    """Messages that reached the broker so far: waiting, taken but unacknowledged, or done."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.llen(queue)
        pipe.hlen("unacked")
        waiting, unacked = pipe.execute()
    return int(waiting) + int(unacked)


def sample_until(stop: threading.Event, redis: Any, started: float, interval_s: float, samples: Samples) -> None:
    """Every `interval_s`, note the time, the exports done and the messages the broker got."""
    while True:
        done = exports_done(redis)
        samples.at_s.append(time.perf_counter() - started)
        samples.done.append(done)
        samples.enqueued.append(done + messages_enqueued(redis))
        if stop.wait(interval_s):
            return


def run_post(command: list[str], env: dict[str, str], workdir: Path) -> tuple[int, float, dict[str, Any], str]:
    """Run the CLI to its end; its exit code, its peak RSS in MB (ru_maxrss, from wait4) and its JSON."""
    out, err = workdir / "post.out", workdir / "post.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        # wait4 rather than Popen.wait: it also hands back the child's resource usage, peak RSS included.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    text = out.read_text(errors="replace").strip()
    payload: dict[str, Any] = json.loads(text) if text.startswith("{") else {}
    return process.returncode, usage.ru_maxrss / 1024, payload, err.read_text(errors="replace")


def time_at(samples: Samples, target: float) -> float:
    """When the done count reached `target`, interpolated between two samples."""
    for k in range(1, len(samples.done)):
        if samples.done[k] >= target:
            before, after = samples.done[k - 1], samples.done[k]
            share = (target - before) / (after - before) if after > before else 1.0
            return samples.at_s[k - 1] + share * (samples.at_s[k] - samples.at_s[k - 1])
    return samples.at_s[-1]


def growth(samples: Samples, objects: int) -> tuple[float, float, float]:
    """Rate over the first tenth (from the first export done), over the last tenth, and their ratio."""
    tenth = objects / 10
    first_done = time_at(samples, 1)
    first = tenth / max(time_at(samples, tenth) - first_done, 1e-9)
    last = tenth / max(time_at(samples, objects) - time_at(samples, objects - tenth), 1e-9)
    return first, last, last / first


def producer_finished_s(samples: Samples, objects: int) -> float:
    """When the broker had every message: the producer's part of the load."""
    for at, enqueued in zip(samples.at_s, samples.enqueued, strict=True):
        if enqueued >= objects:
            return at
    return samples.at_s[-1]


def database_mb() -> float:
    from sqlalchemy import text

    from shared.store.engine import get_engine

    with get_engine().connect() as connection:
        size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return float(size) / 1024 / 1024


def directory_counts() -> tuple[int, int]:
    """Objects stored and provisioning errors open: what the load left, checked against what was posted."""
    from sqlalchemy import text

    from shared.store.engine import get_engine

    with get_engine().connect() as connection:
        objects = connection.execute(text("SELECT count(*) FROM directory_objects")).scalar_one()
        errors = connection.execute(text("SELECT count(*) FROM provisioning_errors")).scalar_one()
    return int(objects), int(errors)


def redis_peak_mb(redis: Any) -> float:
    return float(redis.info("memory")["used_memory_peak"]) / 1024 / 1024


def worker_rss_mb(pool: Any) -> float:
    """The largest VmHWM among the worker main processes and their pool children."""
    peaks = []
    for process in pool.processes:
        pids = [process.pid]
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
    return max(peaks, default=0.0)


def _create_tenant() -> None:
    from shared.store.engine import transaction
    from shared.tenants.registry import TenantSpec, create_tenant

    with transaction() as session:  # both resiliency features on: TenantSpec's defaults
        create_tenant(session, TenantSpec(TENANT, "contoso.onmicrosoft.com"))


def _write_file(env: BenchEnvironment, objects: int) -> LoadFile:
    written = write_load_file(env.workdir / "initial-load.jsonl", objects, TENANT)
    print(
        f"wrote {written.objects} objects ({written.users} users, {written.groups} groups, {written.contacts} "
        f"contacts; {written.conflicting} conflicting), {written.bytes / 1e6:.0f} MB in {written.seconds:.1f} s",
        flush=True,
    )
    return written


def measure(
    objects: int = 1_000_000, workers: int = 2, noop_tasks: int | None = None, plot: str = ""
) -> dict[str, float]:
    """The whole load; figures for the table and the JSON line. `plot`: a PNG path, or "" for none."""
    from redis import Redis

    from bench.throughput import timed_run
    from harness.local_services import Workers
    from shared.messaging import NOOP

    interval_s = QUICK_SAMPLE_INTERVAL_S if objects <= 20_000 else SAMPLE_INTERVAL_S
    noop_tasks = noop_tasks or min(max(objects // 5, 1_000), 20_000)
    with bench_environment() as env:
        _create_tenant()
        written = _write_file(env, objects)
        redis = Redis.from_url(env.redis_url)
        with Workers(env.process_env(), env.workdir, nodes=1, concurrency=workers) as pool:
            noop_per_s = noop_tasks / timed_run(env, NOOP, ({} for _ in range(noop_tasks)))
            print(f"no-op: {noop_per_s:.1f} tasks/s over {noop_tasks} tasks; posting {objects} objects", flush=True)
            baseline = exports_done(redis)
            samples = Samples()
            command = [*syncguard_command(), "post", str(written.path), "--wait", "--json"]
            command += ["--timeout", str(3600 + objects // 10)]  # a stuck load still ends; a slow one does not
            stop = threading.Event()
            started = time.perf_counter()
            sampler = threading.Thread(target=sample_until, args=(stop, redis, started, interval_s, samples))
            sampler.start()
            try:
                code, producer_rss, payload, errors = run_post(command, env.process_env(), env.workdir)
                load_s = time.perf_counter() - started
            finally:
                stop.set()
                sampler.join()
            worker_rss = worker_rss_mb(pool)
        if code != 0:
            raise SystemExit(f"syncguard post exited with {code}:\n{errors[-4000:]}")
        samples.done = [done - baseline for done in samples.done]
        samples.enqueued = [max(0, enqueued - baseline) for enqueued in samples.enqueued]
        samples.at_s.append(load_s)  # the post ends once the last export is done
        samples.done.append(objects)
        samples.enqueued.append(objects)
        first_rate, last_rate, grown = growth(samples, objects)
        stored, provisioning_errors = directory_counts()
        figures: dict[str, float] = {
            "initial_load_objects": objects,
            "initial_load_s": round(load_s, 1),
            "initial_load_per_s": round(objects / load_s, 1),
            "noop_tasks_per_s": round(noop_per_s, 1),
            "initial_load_vs_noop": round(objects / load_s / noop_per_s, 3),
            "initial_load_growth": round(grown, 3),
            "first_tenth_per_s": round(first_rate, 1),
            "last_tenth_per_s": round(last_rate, 1),
            "producer_s": round(producer_finished_s(samples, objects), 1),
            "producer_rss_mb": round(producer_rss, 1),
            "worker_rss_mb": round(worker_rss, 1),
            "redis_peak_mb": round(redis_peak_mb(redis), 1),
            "postgres_mb": round(database_mb(), 1),
            "file_mb": round(written.bytes / 1024 / 1024, 1),
            "generate_s": round(written.seconds, 1),
            "conflicting_objects": written.conflicting,
            "provisioning_errors": provisioning_errors,
            "workers": workers,
        }
        _check(payload, objects, stored)
    if plot:
        from bench.initial_load_plot import plot_rate

        plot_rate(samples.at_s, samples.done, noop_per_s, Path(plot), figures)
        print(f"plot: {plot}", flush=True)
    return figures


def _check(payload: dict[str, Any], objects: int, stored: int) -> None:
    """The load counts only if every line was enqueued and applied, and every object is stored."""
    outcomes = payload.get("outcomes", {})
    problems = []
    if payload.get("enqueued") != objects or payload.get("rejectedCount"):
        problems.append(
            f"post enqueued {payload.get('enqueued')} of {objects}, rejected {payload.get('rejectedCount')}"
        )
    if outcomes != {"applied": objects}:
        problems.append(f"outcomes {outcomes}, expected applied {objects}")
    if stored != objects:
        problems.append(f"{stored} objects stored, expected {objects}")
    if problems:
        raise SystemExit("the load is not whole: " + "; ".join(problems))


def measure_producer(objects: int = 1_000_000) -> dict[str, float]:
    """`syncguard post FILE` alone, no workers and no --wait: the producer's peak memory and rate.

    POST_MAX_OUTSTANDING=0, since with nobody applying a post would hold at that many: this measures
    the producer's own memory over every line, and Redis holding all of them."""
    with bench_environment() as env:
        _create_tenant()
        written = _write_file(env, objects)
        started = time.perf_counter()
        command = [*syncguard_command(), "post", str(written.path), "--json"]
        code, producer_rss, payload, errors = run_post(command, env.process_env(POST_MAX_OUTSTANDING="0"), env.workdir)
        post_s = time.perf_counter() - started
        from redis import Redis

        peak = redis_peak_mb(Redis.from_url(env.redis_url))
    if code != 0 or payload.get("enqueued") != objects:
        raise SystemExit(f"syncguard post exited with {code}, enqueued {payload.get('enqueued')}:\n{errors[-4000:]}")
    return {
        "producer_objects": objects,
        "producer_s": round(post_s, 1),
        "producer_per_s": round(objects / post_s, 1),
        "producer_rss_mb": round(producer_rss, 1),
        "redis_peak_mb": round(peak, 1),
        "file_mb": round(written.bytes / 1024 / 1024, 1),
        "generate_s": round(written.seconds, 1),
    }


def print_table(figures: dict[str, float]) -> None:
    """The figures with their targets, then the one JSON line (`print_figures`)."""
    for key, (op, bound) in TARGETS.items():
        if key in figures:
            met = figures[key] >= bound if op == ">=" else figures[key] < bound
            print(f"target {key} {op} {bound:g}: {'met' if met else 'NOT met'} ({figures[key]})")
    print_figures(figures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("objects", type=int, nargs="?", help="objects to load (default 1,000,000; --quick 5,000)")
    parser.add_argument("--quick", action="store_true", help="a small load carrying the same keys")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--noop-tasks", type=int, default=None, help="no-op tasks timed first (default N/5, 1,000 to 20,000)"
    )
    parser.add_argument("--plot", help=f"PNG to write (default {DOCS_PLOT.relative_to(REPO)}; --quick: /tmp)")
    parser.add_argument("--producer-only", action="store_true", help="post without workers: the producer alone")
    args = parser.parse_args()
    objects = args.objects or (QUICK_OBJECTS if args.quick else 1_000_000)
    if args.producer_only:
        print_figures(measure_producer(objects))
        return
    plot = args.plot or str(Path("/tmp/syncguard-initial-load-quick.png") if args.quick else DOCS_PLOT)
    print_table(measure(objects, args.workers, args.noop_tasks, plot))


if __name__ == "__main__":
    main()
