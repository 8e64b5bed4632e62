"""Batch progress in Redis, so `syncguard post --wait` knows when every export it sent is done.

Each message carries its batch id and its index; the worker adds the index to a set, so a
redelivered message is counted once.
"""

from __future__ import annotations

import time

from redis import Redis

BATCH_TTL_S = 86_400


def _done_key(batch: str) -> str:
    return f"sg:batch:{batch}:done"


def _outcome_key(batch: str) -> str:
    return f"sg:batch:{batch}:outcomes"


def mark_done(redis: Redis, batch: str, index: int, status: str) -> None:
    with redis.pipeline(transaction=False) as pipe:
        pipe.sadd(_done_key(batch), index)
        pipe.hincrby(_outcome_key(batch), status, 1)
        pipe.expire(_done_key(batch), BATCH_TTL_S)
        pipe.expire(_outcome_key(batch), BATCH_TTL_S)
        pipe.execute()


def done_count(redis: Redis, batch: str) -> int:
    return int(redis.scard(_done_key(batch)))


def outcomes(redis: Redis, batch: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis.hgetall(_outcome_key(batch)).items()}


def wait_for(redis: Redis, batch: str, expected: int, timeout_s: float, poll_s: float = 0.05) -> bool:
    """True once `expected` messages of the batch are done; False when `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while done_count(redis, batch) < expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
