"""Send again what the broker lost: posted exports still pending long after everything was delivered.

kombu's Redis transport pops a message and only then files it as unacknowledged, in two commands;
a worker or a broker that dies between the two loses the message. acks_late cannot help there, so
the producer keeps its own ledger (`shared.exports.post_ledger`) and this module closes the loop.

An export is *stranded* when it is still pending, its batch was sent (or last re-sent) longer ago
than the visibility timeout plus two redelivery intervals, no worker started it within that time,
and the exports queue is empty. Then it is in no queue (kombu would have put an abandoned delivery
back by now) and in no worker. Sending it again is harmless: applying is idempotent, and a copy that
survived after all is skipped by its sequence. While the queue is busy nothing is re-sent, since a
pending export may simply be waiting its turn.

A re-sent export is bound to the tenant it names (`send_export`'s `tenant`): the ledger only ever
holds exports the producer validated, and checked against the post's tenant, before filing them,
so the tenant it names is the one its post was authorised for.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from celery import Celery
from redis import Redis

from shared.exports import post_ledger as progress
from shared.exports.tenant_binding import tenant_named
from shared.messaging import EXPORTS_QUEUE, send_export
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RedeliveryResult:
    resent: int = 0
    batches: int = 0
    queue_busy: bool = False


def queued_exports(app: Celery) -> int:
    """Messages waiting in the exports queue (not counting those a worker holds)."""
    with app.connection_for_read() as connection:
        return int(connection.default_channel.queue_declare(EXPORTS_QUEUE).message_count)


def redeliver_stranded(redis: Redis, app: Celery, settings: Settings, now: float | None = None) -> RedeliveryResult:
    """Re-send every stranded export with its original batch and index, so `post --wait` sees it done."""
    result = RedeliveryResult()
    if queued_exports(app):
        result.queue_busy = True
        return result
    now = time.time() if now is None else now
    cutoff = now - settings.stranded_after_s
    for batch in progress.batches_posted_before(redis, cutoff):
        if progress.forget_batch_if_settled(redis, batch):
            continue
        stranded = [p for p in progress.pending(redis, batch) if p.started_at is None or p.started_at < cutoff]
        if not stranded:
            continue
        with app.producer_or_acquire() as producer:
            for export in stranded:
                tenant = tenant_named(export.message)
                send_export(app, export.message, tenant=tenant, batch=batch, index=export.index, producer=producer)
                result.resent += 1
        progress.touch_batch(redis, batch, now)
        result.batches += 1
        log.warning("re-sent %d stranded export(s) of batch %s", len(stranded), batch)
    return result
