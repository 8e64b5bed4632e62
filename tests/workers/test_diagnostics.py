"""The batched no-op is taken exactly as apply_export is, and acknowledges every message it gets."""

from __future__ import annotations

from typing import Any

from redis import Redis

from shared.exports.producer import producer_app
from shared.messaging import APPLY_EXPORT, NOOP_BATCHED, TASK_ROUTES, export_kwargs
from shared.settings import get_settings
from shared.store.tables import Tenant
from tests.workers.helpers import wait_until_idle
from workers.app import create_app
from workers.batching import ExportBatches


def test_the_batched_noop_is_registered_with_apply_exports_batcher_and_queue() -> None:
    """Its figure is the ceiling of the batched design only while it batches as apply_export does."""
    tasks = create_app(get_settings()).tasks
    noop, apply = tasks[NOOP_BATCHED], tasks[APPLY_EXPORT]
    assert isinstance(noop, ExportBatches)
    assert type(noop).__mro__[1:] == type(apply).__mro__[1:]
    assert (noop.flush_every, noop.flush_interval) == (apply.flush_every, apply.flush_interval)
    assert noop.flush_every == get_settings().export_batch_size
    assert TASK_ROUTES[NOOP_BATCHED] == TASK_ROUTES[APPLY_EXPORT]


def test_real_workers_acknowledge_every_batched_noop_message(tenant: Tenant, redis_client: Redis, workers: Any) -> None:
    """A verdict list that is short or says False puts messages back on the queue: it never drains."""
    starts = [log.stat().st_size if log.exists() else 0 for log in workers.logs]
    app = producer_app(get_settings())
    message = {"tenant": tenant.name, "sourceAnchor": "noop", "objectClass": "User", "operation": "add"}
    with app.producer_or_acquire() as producer:
        for i in range(500):
            app.send_task(
                NOOP_BATCHED, kwargs=export_kwargs(dict(message, sequence=i + 1), tenant=tenant.name), producer=producer
            )
    wait_until_idle(redis_client, timeout_s=60)
    written = "".join(log.read_bytes()[start:].decode() for log, start in zip(workers.logs, starts, strict=True))
    assert "unregistered" not in written.lower() and "Traceback" not in written, written[-2000:]
