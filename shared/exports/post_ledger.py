"""Batch progress in Redis: what a post sent, what the workers started and finished.

Each message carries its batch id and its index. The producer files every message it sends in the
batch's *pending* ledger; a worker marks the index started when a delivery begins and done when it
ends, which also takes it out of the ledger. So `syncguard post --wait` knows when the batch is
done, and what stays pending long after everything was delivered is an export the broker lost
(`shared.exports.redelivery` sends it again).

The first completion of an index decides its outcome, so a redelivered message is counted once; an
index applied twice is counted as `applied-again`, which the sequence check makes impossible.
Keys share the batch's hash tag, so the marking script stays legal on a Redis Cluster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.typing import EncodableT, FieldT

from shared.metrics.activity import count_export

BATCH_TTL_S = 86_400
PENDING_TTL_S = 7 * 86_400  # longer than any outage we expect to ride out
PENDING_BATCHES = "sg:batches:pending"
APPLIED_AGAIN = "applied-again"

_MARK_DONE = """
local previous = redis.call('hget', KEYS[1], ARGV[1])
if not previous then
    redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
    redis.call('hincrby', KEYS[2], ARGV[2], 1)
elseif ARGV[2] == 'applied' then
    if previous == 'applied' then
        redis.call('hincrby', KEYS[2], 'applied-again', 1)
    else
        redis.call('hset', KEYS[1], ARGV[1], 'applied')
        redis.call('hincrby', KEYS[2], previous, -1)
        redis.call('hincrby', KEYS[2], 'applied', 1)
    end
end
redis.call('hdel', KEYS[3], ARGV[1])
redis.call('expire', KEYS[1], ARGV[3])
redis.call('expire', KEYS[2], ARGV[3])
return previous and 0 or 1
"""


def _text(value: Any) -> str:
    """Redis answers bytes (this client does not decode responses)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _status_key(batch: str) -> str:
    return f"sg:batch:{{{batch}}}:status"


def _outcome_key(batch: str) -> str:
    return f"sg:batch:{{{batch}}}:outcomes"


def _pending_key(batch: str) -> str:
    return f"sg:batch:{{{batch}}}:pending"


def _started_key(batch: str) -> str:
    return f"sg:batch:{{{batch}}}:started"


@dataclass(frozen=True, slots=True)
class PendingExport:
    """A message sent and not yet done: what to send again if the broker lost it."""

    index: int
    message: dict[str, Any]
    started_at: float | None


def record_posted(redis: Redis | Pipeline, batch: str, messages: Iterable[tuple[int, dict[str, Any]]]) -> None:
    """File the messages about to be sent; call before sending, so none is ever sent unrecorded."""
    mapping: dict[FieldT, EncodableT] = {
        str(index): json.dumps(message, ensure_ascii=False) for index, message in messages
    }
    if not mapping:
        return
    pipe = redis if isinstance(redis, Pipeline) else redis.pipeline(transaction=False)
    pipe.hset(_pending_key(batch), mapping=mapping)
    pipe.expire(_pending_key(batch), PENDING_TTL_S)
    pipe.zadd(PENDING_BATCHES, {batch: time.time()})
    if pipe is not redis:
        pipe.execute()


def forget_posted(redis: Redis, batch: str, indices: Iterable[int]) -> None:
    """Messages that were never sent after all (the broker failed first)."""
    fields = [str(i) for i in indices]
    if fields:
        redis.hdel(_pending_key(batch), *fields)


def mark_started(pipe: Redis | Pipeline, batch: str, index: int) -> None:
    pipe.hset(_started_key(batch), str(index), f"{time.time():.3f}")
    pipe.expire(_started_key(batch), PENDING_TTL_S)


def mark_done(redis: Redis | Pipeline, batch: str, index: int, status: str) -> None:
    """The delivery of `index` ended with `status`; it leaves the pending ledger."""
    pipe = redis if isinstance(redis, Pipeline) else redis.pipeline(transaction=False)
    pipe.eval(
        _MARK_DONE, 3, _status_key(batch), _outcome_key(batch), _pending_key(batch), str(index), status, BATCH_TTL_S
    )
    count_export(pipe, status)
    if pipe is not redis:
        pipe.execute()


def done_count(redis: Redis, batch: str) -> int:
    return int(redis.hlen(_status_key(batch)))


def outcomes(redis: Redis, batch: str) -> dict[str, int]:
    counts = {_text(k): int(v) for k, v in redis.hgetall(_outcome_key(batch)).items()}
    return {status: count for status, count in counts.items() if count}


def wait_for(redis: Redis, batch: str, expected: int, timeout_s: float, poll_s: float = 0.05) -> bool:
    """True once `expected` messages of the batch are done; False when `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while done_count(redis, batch) < expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def batches_posted_before(redis: Redis, moment: float) -> list[str]:
    """Batches with pending messages, last sent (or re-sent) before `moment`."""
    return [_text(b) for b in redis.zrangebyscore(PENDING_BATCHES, "-inf", moment)]


def pending(redis: Redis, batch: str) -> list[PendingExport]:
    """The batch's messages not done yet, with when a worker last started each (if ever)."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.hgetall(_pending_key(batch))
        pipe.hgetall(_started_key(batch))
        messages, started = pipe.execute()
    return [
        PendingExport(int(index), json.loads(message), float(started[index]) if index in started else None)
        for index, message in sorted(messages.items(), key=lambda item: int(item[0]))
    ]


def touch_batch(redis: Redis, batch: str, moment: float | None = None) -> None:
    """The batch's stragglers were just re-sent: give them a full grace period again."""
    redis.zadd(PENDING_BATCHES, {batch: moment if moment is not None else time.time()})


def forget_batch_if_settled(redis: Redis, batch: str) -> bool:
    """Drop a batch from the index once nothing of it is pending."""
    if redis.hlen(_pending_key(batch)):
        return False
    redis.zrem(PENDING_BATCHES, batch)
    return True
