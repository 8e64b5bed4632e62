"""How often one message has been delivered without finishing: the evidence of a crash loop.

A message whose worker dies mid-export is delivered again (acks_late, reject_on_worker_lost). That
is right for a crash that had nothing to do with the export, and endless for one the export itself
causes. Each delivery bumps a counter keyed by the Celery task id and retry number; finishing in
any way deletes it. So the counter says how many deliveries died on the way, and past
EXPORT_CRASH_LIMIT the export is filed as a dead letter instead of being tried again.
"""

from __future__ import annotations

from redis import Redis

from shared import progress

COUNTER_TTL_S = 7 * 86_400


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


def end_delivery(
    redis: Redis, task_id: str, retries: int, batch: str | None, index: int | None, status: str | None
) -> None:
    """The delivery finished (`status`) or handed over to a retry (`None`): it did not crash."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.delete(_counter_key(task_id, retries))
        if status is not None and batch is not None and index is not None:
            progress.mark_done(pipe, batch, index, status)
        pipe.execute()
