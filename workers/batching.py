"""The export batcher: celery-batches, with one acknowledgement decision per message.

The stock `Batches.flush` acknowledges every message once the batch returns, even when it raised,
and leaves them unacknowledged until the visibility timeout when the pool process dies. Here a
message is acknowledged only when the batch says it finished; everything else, and everything of a
batch whose process died or timed out, is put back on the queue at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

from celery_batches import Batches, SimpleRequest, consume_queue
from celery_batches.trace import apply_batches_task

from shared.exports.crash_counter import DeliveryId
from shared.exports.tenant_binding import sent_for
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ExportDelivery:
    """One export message as the batch received it, with the tenant it is bound to: the one it was
    sent for, or, for a message of an older version that carries none, the one it names."""

    delivery: DeliveryId
    message: Any
    tenant: str | None

    @classmethod
    def of(cls, request: SimpleRequest) -> ExportDelivery:
        kwargs = dict(request.kwargs or {})
        for name, value in zip(("message", "batch", "index"), request.args or (), strict=False):
            kwargs.setdefault(name, value)
        retries = int((request.request_dict or {}).get("retries") or 0)
        delivery = DeliveryId(str(request.id), retries, kwargs.get("batch"), kwargs.get("index"))
        bound = kwargs.get("tenant")
        message = kwargs.get("message")
        return cls(delivery, message, sent_for(bound if isinstance(bound, str) else None, message))


def export_batch_options(settings: Settings) -> dict[str, Any]:
    """How a task over export messages is batched: `apply_export` and the batched no-op that
    measures its ceiling (`workers.diagnostics`) are registered with these same options."""
    return {
        "base": ExportBatches,
        "shared": False,
        "flush_every": settings.export_batch_size,
        "flush_interval": settings.export_batch_wait_s,
    }


class ExportBatches(Batches):  # type: ignore[misc]
    """A batch task's base. `flush_every` and `flush_interval` come from the task's options,
    `export_batch_options` of the settings the app was built with."""

    _tref: Any

    def Strategy(self, task: Batches, app: Any, consumer: Any) -> Any:
        """Called on every (re)connection to the broker. Messages buffered on the connection before
        cannot be acknowledged on this one: forget them (the broker hands them out again after the
        visibility timeout), and the flush timer with them, which the reconnection has cleared."""
        dropped = len(list(consume_queue(self._buffer))) + len(list(consume_queue(self._pending)))
        if dropped:
            log.warning(
                "dropped %d export(s) buffered on a lost broker connection; the broker redelivers them", dropped
            )
        if self._tref is not None:
            self._tref.cancel()
        self._tref, self._count = None, count(1)
        return super().Strategy(task, app, consumer)

    def flush(self, requests: Sequence[Any]) -> Any:
        simple = [SimpleRequest.from_request(r) for r in requests]

        def on_return(verdicts: Any) -> None:
            finished = verdicts if isinstance(verdicts, list) and len(verdicts) == len(requests) else []
            for request, done in zip(requests, finished or [False] * len(requests), strict=True):
                if done:
                    request.acknowledge()
                else:
                    request.reject(requeue=True)

        def on_error(failure: Any) -> None:
            log.warning("a batch of %d exports died (%s); they go back on the queue", len(requests), failure)
            for request in requests:
                request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, (simple,), 0, None),
            callback=on_return,
            error_callback=on_error,
            timeout=self.app.conf.task_time_limit,
            soft_timeout=self.app.conf.task_soft_time_limit,
        )
