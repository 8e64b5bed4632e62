"""Running totals of what the workers did, kept in Redis so `/metrics` can read them from any process.

Redis rather than per-process counters: the workers are many processes on many hosts and the API
that serves `/metrics` is yet another one. The totals survive process restarts (not a Redis flush;
Prometheus' `rate()` copes with such a reset).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

EXPORTS_BY_OUTCOME = "sg:activity:exports"
QUARANTINES_OPENED = "sg:activity:quarantines-opened"
QUARANTINES_RELEASED = "sg:activity:quarantines-released"


@dataclass(frozen=True, slots=True)
class ActivityTotals:
    exports_by_outcome: dict[str, int]
    quarantines_opened: int
    quarantines_released: int


def count_export(pipe: Pipeline | Redis, status: str) -> None:
    """One export done with this outcome (`applied`, `skipped`, `failed`, `gave-up`)."""
    pipe.hincrby(EXPORTS_BY_OUTCOME, status, 1)


def count_quarantines(redis: Redis, opened: int = 0, released: int = 0) -> None:
    """Values an export quarantined, or releases that handed a value to its waiter."""
    with redis.pipeline(transaction=False) as pipe:
        if opened:
            pipe.incrby(QUARANTINES_OPENED, opened)
        if released:
            pipe.incrby(QUARANTINES_RELEASED, released)
        pipe.execute()


def totals(redis: Redis) -> ActivityTotals:
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(EXPORTS_BY_OUTCOME)
        pipe.get(QUARANTINES_OPENED)
        pipe.get(QUARANTINES_RELEASED)
        by_outcome, opened, released = pipe.execute()
    return ActivityTotals(
        exports_by_outcome={k.decode(): int(v) for k, v in by_outcome.items()},
        quarantines_opened=int(opened or 0),
        quarantines_released=int(released or 0),
    )
