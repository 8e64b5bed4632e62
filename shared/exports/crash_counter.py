"""How often one message has been delivered without finishing: the evidence of a crash loop.

A message whose worker dies mid-export is delivered again (acks_late, reject_on_worker_lost). That
is right for a crash that had nothing to do with the export, and endless for one the export itself
causes. Each delivery bumps a counter keyed by the Celery task id and retry number; finishing in
any way deletes it. So the counter says how many deliveries died on the way, and past
EXPORT_CRASH_LIMIT the export is filed as a dead letter instead of being tried again.

A batch counts its messages with `begin_batch`: a message without a counter is a first delivery
and is counted at once; one whose counter is still there was in a delivery that died, so it is
counted only when it is applied alone (`begin_delivery`), and a batch that died takes at most one
count from each message that was in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from shared.exports import post_ledger as progress

COUNTER_TTL_S = 7 * 86_400

# KEYS: counters. Sets a missing counter to 1 and returns 1; for one already there, returns what
# counting this delivery would make it, without counting it.
_BEGIN_BATCH = """
local counts = {}
for i, key in ipairs(KEYS) do
    local count = redis.call('get', key)
    if count then
        counts[i] = tonumber(count) + 1
    else
        redis.call('set', key, 1, 'EX', ARGV[1])
        counts[i] = 1
    end
end
return counts
"""


@dataclass(frozen=True, slots=True)
class DeliveryId:
    """One delivery of one export message: the Celery task id and retry, and its place in a post."""

    task_id: str
    retries: int
    batch: str | None = None
    index: int | None = None


def _counter_key(task_id: str, retries: int) -> str:
    return f"sg:delivery:{task_id}:{retries}"


def begin_delivery(redis: Redis, task_id: str, retries: int, batch: str | None, index: int | None) -> int:
    """Count this delivery (and mark the batch index started); return how many there have been."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.incr(_counter_key(task_id, retries))
        pipe.expire(_counter_key(task_id, retries), COUNTER_TTL_S)
        if batch is not None and index is not None:
            progress.mark_started(pipe, batch, index)
        count = pipe.execute()[0]
    return int(count)


def begin_batch(redis: Redis, deliveries: Sequence[DeliveryId]) -> list[int]:
    """Count first deliveries, mark every post index started; return each one's delivery number.

    A number above 1 means a delivery died with this message: apply it alone, through
    `begin_delivery`, which counts it.
    """
    with redis.pipeline(transaction=False) as pipe:
        pipe.eval(
            _BEGIN_BATCH, len(deliveries), *(_counter_key(d.task_id, d.retries) for d in deliveries), COUNTER_TTL_S
        )
        for d in deliveries:
            if d.batch is not None and d.index is not None:
                progress.mark_started(pipe, d.batch, d.index)
        counts = pipe.execute()[0]
    return [int(c) for c in counts]


def end_delivery(
    redis: Redis, task_id: str, retries: int, batch: str | None, index: int | None, status: str | None
) -> None:
    """The delivery finished (`status`) or handed over to a retry (`None`): it did not crash."""
    end_deliveries(redis, [(DeliveryId(task_id, retries, batch, index), status)])


def end_deliveries(redis: Redis, ended: Sequence[tuple[DeliveryId, str | None]]) -> None:
    """`end_delivery` for many, in one round trip."""
    if not ended:
        return
    with redis.pipeline(transaction=False) as pipe:
        for d, status in ended:
            pipe.delete(_counter_key(d.task_id, d.retries))
            if status is not None and d.batch is not None and d.index is not None:
                progress.mark_done(pipe, d.batch, d.index, status)
        pipe.execute()
