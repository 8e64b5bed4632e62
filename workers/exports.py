"""`apply_export`, a batch task, and the fast-path `release_values`.

Exports stay one message each. The worker gathers up to EXPORT_BATCH_SIZE of them (celery-batches)
and `ExportApplier.apply_many` applies the batch in one transaction under one lock call. Each
message's fate is still decided on its own, and nothing is acknowledged without being applied or
recorded:
- applied, skipped or refused in the batch; or alone right after it, when the batch could not
  take it (keys busy elsewhere, invalid input, a batch that failed as a whole);
- alone, a transient obstacle (busy locks, a lost race, a database or Redis that does not answer)
  sends the message again with back-off, as `Task.retry` does (same task id, one more retry);
  anything else, or a transient error that outlasts the retries, is filed as a dead letter
  (`ApplyFailed`, with the raw message);
- a message left by a delivery that died (its counter is still there, see `shared.exports.crash_counter`)
  is applied alone, after the batch, so a message that kills its worker takes no batch with it
  twice; past EXPORT_CRASH_LIMIT it is a dead letter.
The batch returns one verdict per message: finished ones are acknowledged, the rest go back on the
queue. A worker process that dies under a batch, or a batch that raises, puts all of them back.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import count
from typing import Any

from celery import Task
from celery_batches import Batches, SimpleRequest, consume_queue
from celery_batches.trace import apply_batches_task
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.exports.applier import ExportApplier
from shared.exports.crash_counter import DeliveryId, begin_batch, begin_delivery, end_deliveries
from shared.exports.failures import record_dead_letter
from shared.exports.outcomes import Outcome, RetryLater
from shared.locks.manager import LockManager, LocksBusy
from shared.messaging import (
    APPLY_EXPORT,
    EXPORTS_QUEUE,
    MAINTENANCE_QUEUE,
    RELEASE_RESOLVED_CONFLICTS,
    RELEASE_VALUES,
    RELEASES_QUEUE,
)
from shared.metrics.activity import count_quarantines
from shared.settings import get_settings
from shared.store.engine import transaction
from workers.app import app

log = logging.getLogger(__name__)

# SQLSTATE classes retrying can fix: connection exception, transaction rollback (serialization,
# deadlock), insufficient resources, operator intervention (admin shutdown, cannot connect now).
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})


@lru_cache(maxsize=1)
def _redis() -> Redis:
    return Redis.from_url(get_settings().redis_url)


@lru_cache(maxsize=1)
def lock_manager() -> LockManager:
    return LockManager(_redis(), ttl_ms=get_settings().lock_ttl_ms)


@lru_cache(maxsize=1)
def applier() -> ExportApplier:
    """One per worker process, built on first use (after the fork)."""
    return ExportApplier(lock_manager(), get_settings())


def is_transient(exc: BaseException) -> bool:
    """Whether applying the same export again later can succeed where this attempt failed."""
    if isinstance(exc, LocksBusy | RetryLater | RedisConnectionError | RedisTimeoutError | PoolTimeout):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return str(getattr(exc.orig, "sqlstate", None) or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    return False


def _retry_delay(retries: int) -> float:
    """Jittered, growing back-off so racing exports spread out instead of colliding again."""
    return random.uniform(0.05, 0.2) * min(2**retries, 32)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class ExportDelivery:
    """One export message as the batch received it."""

    delivery: DeliveryId
    message: Any

    @classmethod
    def of(cls, request: SimpleRequest) -> ExportDelivery:
        kwargs = dict(request.kwargs or {})
        for name, value in zip(("message", "batch", "index"), request.args or (), strict=False):
            kwargs.setdefault(name, value)
        retries = int((request.request_dict or {}).get("retries") or 0)
        delivery = DeliveryId(str(request.id), retries, kwargs.get("batch"), kwargs.get("index"))
        return cls(delivery, kwargs.get("message"))

    def resend_kwargs(self) -> dict[str, Any]:
        return {"message": self.message, "batch": self.delivery.batch, "index": self.delivery.index}


class ExportBatches(Batches):  # type: ignore[misc]
    """celery-batches, with one acknowledgement decision per message instead of one per batch.

    The stock `flush` acknowledges every message once the batch returns, even when it raised, and
    leaves them unacknowledged until the visibility timeout when the pool process dies. Here a
    message is acknowledged only when the batch says it finished; everything else, and everything
    of a batch whose process died or timed out, is put back on the queue at once.
    """

    flush_every = get_settings().export_batch_size
    flush_interval = get_settings().export_batch_wait_s

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
        settings = get_settings()

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
            timeout=settings.task_time_limit_s,
            soft_timeout=max(1, int(settings.task_time_limit_s * 0.9)),
        )


@app.task(name=APPLY_EXPORT, base=ExportBatches)
def apply_export(requests: list[SimpleRequest]) -> list[bool]:
    """Apply a batch of export messages; returns, per message, whether it finished (acknowledge it)."""
    started = time.monotonic()
    exports = [ExportDelivery.of(r) for r in requests]
    try:
        counts = begin_batch(_redis(), [e.delivery for e in exports])
    except Exception as exc:
        log.warning("could not count the deliveries of %d exports (%s); they go back", len(exports), _describe(exc))
        return [False] * len(exports)
    first = [i for i, number in enumerate(counts) if number == 1]
    verdicts = [False] * len(exports)
    for i, done in zip(first, _apply_batch([exports[i] for i in first], started), strict=True):
        verdicts[i] = done
    for i, number in enumerate(counts):
        if number > 1:
            verdicts[i] = _apply_alone(exports[i], started)
    return verdicts


def _apply_batch(exports: Sequence[ExportDelivery], started: float) -> list[bool]:
    """The first deliveries: one transaction for all it can take, then the rest alone."""
    if not exports:
        return []
    try:
        outcomes = applier().apply_many([e.message for e in exports])
    except Exception as exc:
        log.warning("a batch of %d exports failed (%s); each goes alone", len(exports), _describe(exc))
        outcomes = [None] * len(exports)
    done = [(e, o) for e, o in zip(exports, outcomes, strict=True) if o is not None]
    if done:
        _finish(done)
    return [
        True if outcome is not None else _apply_alone(export, started, counted=True)
        for export, outcome in zip(exports, outcomes, strict=True)
    ]


def _finish(done: Sequence[tuple[ExportDelivery, Outcome]]) -> None:
    """After commit: fast releases, counts, and the end of each delivery (one Redis round trip)."""
    log.info("applied a batch of %d exports", len(done))
    for _, outcome in done:
        _release_after_commit(outcome)
    opened = sum(o.newly_quarantined for _, o in done)
    try:
        if opened:
            count_quarantines(_redis(), opened=opened)
        end_deliveries(_redis(), [(e.delivery, o.status) for e, o in done])
    except (RedisConnectionError, RedisTimeoutError) as exc:
        # Committed all the same: acknowledging is right; a redelivery would only be skipped.
        log.warning("could not record the end of %d applied exports: %s", len(done), _describe(exc))


def _apply_alone(export: ExportDelivery, batch_started: float, counted: bool = False) -> bool:
    """One export on its own, with the crash counter, retries and dead letters; True when finished.

    `counted`: its first delivery, already counted by `begin_batch`. A batch that has run for half
    its time limit (since `batch_started`) sends the rest as retries instead of waiting for their locks.
    """
    settings = get_settings()
    d = export.delivery
    limit = settings.export_crash_limit
    try:
        if time.monotonic() - batch_started > settings.task_time_limit_s / 2:
            raise RetryLater("the batch ran out of time before this export's turn")
        deliveries = 1 if counted else begin_delivery(_redis(), d.task_id, d.retries, d.batch, d.index)
        if deliveries > limit + 1:
            return _dead_letter(
                export,
                f"its worker died {deliveries - 1} times while applying it (EXPORT_CRASH_LIMIT is {limit}); "
                "it is not tried again until 'syncguard failures retry'",
                deliveries - 1,
            )
        outcome = applier().apply(export.message)
    except Exception as exc:
        return _after_error(export, exc)
    _release_after_commit(outcome)
    if outcome.newly_quarantined:
        count_quarantines(_redis(), opened=outcome.newly_quarantined)
    if outcome.status == "skipped" and deliveries > 1:
        _sweep_after_crash(outcome.tenant)
    end_deliveries(_redis(), [(d, outcome.status)])
    log.info("applied an export alone: %s", outcome.status)
    return True


def _after_error(export: ExportDelivery, exc: BaseException) -> bool:
    """A transient error is retried with back-off; anything else, or too many retries, is a dead letter."""
    d = export.delivery
    attempts = d.retries + 1
    retry_limit = get_settings().export_retry_limit
    if not is_transient(exc):
        log.error("unexpected error applying an export; filing it as a dead letter", exc_info=exc)
        return _dead_letter(export, f"unexpected error: {_describe(exc)}", attempts)
    if d.retries >= retry_limit:
        return _dead_letter(
            export,
            f"gave up after {attempts} attempts (EXPORT_RETRY_LIMIT is {retry_limit}); "
            f"the last error: {_describe(exc)}",
            attempts,
        )
    return _send_retry(export, exc)


def _send_retry(export: ExportDelivery, exc: BaseException) -> bool:
    """What `Task.retry` does: the same task id with one more retry, after a back-off. The retry's
    delivery has its own counter, so this one ends here (handing over is not a crash)."""
    d = export.delivery
    try:
        app.send_task(
            APPLY_EXPORT,
            kwargs=export.resend_kwargs(),
            task_id=d.task_id,
            retries=d.retries + 1,
            countdown=_retry_delay(d.retries),
            queue=EXPORTS_QUEUE,
        )
    except Exception as sending:
        log.warning("could not send a retry (%s); the export goes back on the queue", _describe(sending))
        return False
    log.info("export %s retries (%d): %s", d.task_id, d.retries + 1, _describe(exc))
    _quietly(lambda: end_deliveries(_redis(), [(d, None)]), "reset the delivery counter")
    return True


def _dead_letter(export: ExportDelivery, reason: str, attempts: int) -> bool:
    """File the export as `ApplyFailed`; while even that fails, keep the message and try again later."""
    try:
        with transaction() as session:
            record_dead_letter(session, export.message, reason, attempts)
    except Exception as exc:
        log.warning("could not file a dead letter (%s); the export is kept and tried again", _describe(exc))
        return _send_retry(export, exc)
    log.warning("export filed as a dead letter: %s", reason)
    _quietly(lambda: end_deliveries(_redis(), [(export.delivery, "failed")]), "record the dead letter's end")
    return True


def _quietly(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("could not %s: %s", what, _describe(exc))


def _release_after_commit(outcome: Outcome) -> None:
    """Values the committed export freed that others wait for: release them now, not at the sweep.

    The export is committed whatever happens here; if the broker refuses the follow-up, the
    release sweep (beat) hands the values over later, so this never fails the export.
    """
    if not (outcome.freed_with_waiters and outcome.tenant and get_settings().fast_release):
        return
    try:
        release_values.apply_async((outcome.tenant, list(outcome.freed_with_waiters)), queue=RELEASES_QUEUE)
    except Exception as exc:
        log.warning(
            "could not enqueue the fast release of %s in %s (%s); the release sweep will hand them over",
            list(outcome.freed_with_waiters),
            outcome.tenant,
            _describe(exc),
        )


def _sweep_after_crash(tenant: str | None) -> None:
    """A redelivered export found already applied: its first delivery died after the commit, maybe
    before it enqueued the fast release. Sweep the tenant now rather than at the next hourly sweep."""
    if tenant is None:
        return
    try:
        app.send_task(RELEASE_RESOLVED_CONFLICTS, kwargs={"tenant": tenant}, queue=MAINTENANCE_QUEUE)
    except Exception as exc:
        log.warning("could not enqueue a release sweep of %s (%s); the hourly one will run", tenant, _describe(exc))


@app.task(name=RELEASE_VALUES, bind=True, max_retries=get_settings().export_retry_limit)
def release_values(self: Task, tenant: str, keys: list[str]) -> list[str]:
    """Give each freed value to its earliest waiter; returns the values handed over."""
    released: list[str] = []
    for key in keys:
        try:
            outcome = applier().release(tenant, key)
        except (LocksBusy, RetryLater, OperationalError, DBAPIError) as exc:
            raise self.retry(
                args=(tenant, keys[keys.index(key) :]), exc=exc, countdown=_retry_delay(self.request.retries)
            ) from exc
        if outcome.status == "released":
            released.append(key)
            count_quarantines(_redis(), released=1)
            _release_after_commit(outcome)
    return released
