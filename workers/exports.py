"""`apply_export`, a batch task, and the fast-path `release_values`.

Exports stay one message each. The worker gathers up to EXPORT_BATCH_SIZE of them (`workers.batching`)
and `ExportApplier.apply_many` applies the batch in one transaction under one lock call. Each
message's fate is still decided on its own, and nothing is acknowledged without being applied or
recorded:
- applied, skipped or refused in the batch; or alone right after it, when the batch could not
  take it (keys busy elsewhere, invalid input, a batch that failed as a whole);
- alone, a transient obstacle (`shared.exports.transient`) sends the message again with back-off,
  as `Task.retry` does (same task id, one more retry); anything else, or a transient error that
  outlasts the retries, is filed as a dead letter (`ApplyFailed`, with the raw message);
- a message left by a delivery that died (its counter is still there, see `shared.exports.crash_counter`)
  is applied alone, after the batch, so a message that kills its worker takes no batch with it
  twice; past EXPORT_CRASH_LIMIT it is a dead letter.
The batch returns one verdict per message: finished ones are acknowledged, the rest go back on the
queue. A worker process that dies under a batch, or a batch that raises, puts all of them back.

Before any of that, each message is held to the tenant it is bound to (`ExportDelivery.tenant`): one
whose export names another tenant is refused, filed as a `DataValidationFailed` failure of the bound
tenant (never of the one it names), and acknowledged. A retry is sent bound to the same tenant.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from celery_batches import SimpleRequest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.core.export import ExportRejected
from shared.exports.crash_counter import begin_batch, begin_delivery, end_deliveries
from shared.exports.failures import FailureRecord, record_dead_letter, record_failures
from shared.exports.outcomes import Outcome, RetryLater
from shared.exports.tenant_binding import refusal
from shared.exports.transient import is_transient
from shared.messaging import APPLY_EXPORT, RELEASE_VALUES, send_export, send_release, send_sweep
from shared.metrics.activity import count_quarantines
from shared.store.engine import get_engine, transaction
from workers.batching import ExportDelivery, export_batch_options
from workers.context import WorkerContext

log = logging.getLogger(__name__)


def retry_delay(retries: int) -> float:
    """Jittered, growing back-off so racing exports spread out instead of colliding again."""
    return random.uniform(0.05, 0.2) * float(min(2**retries, 32))


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:500]}" if text else type(exc).__name__


class ExportWork:
    """The body of the export tasks, on the context the app was built with."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.settings = context.settings

    def apply_batch(self, requests: list[SimpleRequest]) -> list[bool]:
        """Apply a batch of export messages; returns, per message, whether it finished (acknowledge it)."""
        started = time.monotonic()
        exports = [ExportDelivery.of(r) for r in requests]
        try:
            counts = begin_batch(self.context.redis, [e.delivery for e in exports])
        except Exception as exc:
            log.warning("could not count the deliveries of %d exports (%s); they go back", len(exports), describe(exc))
            return [False] * len(exports)
        verdicts = [False] * len(exports)
        refused = self._refused(exports)
        for i, done in self._file_refusals(exports, refused).items():
            verdicts[i] = done
        first = [i for i, number in enumerate(counts) if number == 1 and i not in refused]
        for i, done in zip(first, self._apply_first_deliveries([exports[i] for i in first], started), strict=True):
            verdicts[i] = done
        for i, number in enumerate(counts):
            if number > 1 and i not in refused:
                verdicts[i] = self._apply_alone(exports[i], started)
        return verdicts

    def _refused(self, exports: Sequence[ExportDelivery]) -> dict[int, ExportRejected]:
        """The messages whose export names another tenant than the one they are bound to."""
        limit = self.settings.max_proxy_addresses
        found = {i: refusal(e.message, e.tenant, max_proxy_addresses=limit) for i, e in enumerate(exports)}
        return {i: rejected for i, rejected in found.items() if rejected is not None}

    def _file_refusals(self, exports: Sequence[ExportDelivery], refused: dict[int, ExportRejected]) -> dict[int, bool]:
        """File each refusal under its bound tenant, in one transaction; while that fails, they retry."""
        if not refused:
            return {}
        try:
            with get_engine(self.settings.database_url).begin() as connection:
                record_failures(connection, [FailureRecord.of(rejected) for rejected in refused.values()])
        except Exception as exc:
            log.warning("could not file %d refused export(s) (%s); they are tried again", len(refused), describe(exc))
            return {i: self._send_retry(exports[i], exc) for i in refused}
        for i, rejected in refused.items():
            log.warning("refused an export bound to tenant %r: %s", exports[i].tenant, rejected.message)
        self._quietly(
            lambda: end_deliveries(self.context.redis, [(exports[i].delivery, "failed") for i in refused]),
            "record the end of the refused exports",
        )
        return dict.fromkeys(refused, True)

    def _apply_first_deliveries(self, exports: Sequence[ExportDelivery], started: float) -> list[bool]:
        """The first deliveries: one transaction for all it can take, then the rest alone."""
        if not exports:
            return []
        outcomes: list[Outcome | None]
        try:
            outcomes = self.context.applier.apply_many([e.message for e in exports])
        except Exception as exc:
            log.warning("a batch of %d exports failed (%s); each goes alone", len(exports), describe(exc))
            outcomes = [None] * len(exports)
        done = [(e, o) for e, o in zip(exports, outcomes, strict=True) if o is not None]
        if done:
            self._finish(done)
        return [
            True if outcome is not None else self._apply_alone(export, started, counted=True)
            for export, outcome in zip(exports, outcomes, strict=True)
        ]

    def _finish(self, done: Sequence[tuple[ExportDelivery, Outcome]]) -> None:
        """After commit: fast releases, counts, and the end of each delivery (one Redis round trip)."""
        log.info("applied a batch of %d exports", len(done))
        for _, outcome in done:
            self.release_after_commit(outcome)
        opened = sum(o.newly_quarantined for _, o in done)
        try:
            if opened:
                count_quarantines(self.context.redis, opened=opened)
            end_deliveries(self.context.redis, [(e.delivery, o.status) for e, o in done])
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Committed all the same: acknowledging is right; a redelivery would only be skipped.
            log.warning("could not record the end of %d applied exports: %s", len(done), describe(exc))

    def _apply_alone(self, export: ExportDelivery, batch_started: float, counted: bool = False) -> bool:
        """One export on its own, with the crash counter, retries and dead letters; True when finished.

        `counted`: its first delivery, already counted by `begin_batch`. A batch that has run for half
        its time limit (since `batch_started`) sends the rest as retries instead of waiting for their locks.
        """
        d = export.delivery
        limit = self.settings.export_crash_limit
        redis = self.context.redis
        try:
            if time.monotonic() - batch_started > self.settings.task_time_limit_s / 2:
                raise RetryLater("the batch ran out of time before this export's turn")
            deliveries = 1 if counted else begin_delivery(redis, d.task_id, d.retries, d.batch, d.index)
            if deliveries > limit + 1:
                return self._dead_letter(
                    export,
                    f"its worker died {deliveries - 1} times while applying it (EXPORT_CRASH_LIMIT is {limit}); "
                    "it is not tried again until 'syncguard failures retry'",
                    deliveries - 1,
                )
            outcome = self.context.applier.apply(export.message)
        except Exception as exc:
            return self._after_error(export, exc)
        self.release_after_commit(outcome)
        if outcome.newly_quarantined:
            count_quarantines(redis, opened=outcome.newly_quarantined)
        if outcome.status == "skipped" and deliveries > 1:
            self._sweep_after_crash(outcome.tenant)
        end_deliveries(redis, [(d, outcome.status)])
        log.info("applied an export alone: %s", outcome.status)
        return True

    def _after_error(self, export: ExportDelivery, exc: BaseException) -> bool:
        """A transient error is retried with back-off; anything else, or too many retries, is a dead letter."""
        d = export.delivery
        attempts = d.retries + 1
        retry_limit = self.settings.export_retry_limit
        if not is_transient(exc):
            log.error("unexpected error applying an export; filing it as a dead letter", exc_info=exc)
            return self._dead_letter(export, f"unexpected error: {describe(exc)}", attempts)
        if d.retries >= retry_limit:
            return self._dead_letter(
                export,
                f"gave up after {attempts} attempts (EXPORT_RETRY_LIMIT is {retry_limit}); "
                f"the last error: {describe(exc)}",
                attempts,
            )
        return self._send_retry(export, exc)

    def _send_retry(self, export: ExportDelivery, exc: BaseException) -> bool:
        """What `Task.retry` does: the same task id with one more retry, after a back-off.

        `Task.retry` itself cannot serve: it retries the task's one current request, and a batch task
        has many. The retry's delivery has its own counter, so this one ends here (handing over is
        not a crash).
        """
        d = export.delivery
        try:
            send_export(
                self.context.app,
                export.message,
                tenant=export.tenant,
                batch=d.batch,
                index=d.index,
                task_id=d.task_id,
                retries=d.retries + 1,
                countdown=retry_delay(d.retries),
            )
        except Exception as sending:
            log.warning("could not send a retry (%s); the export goes back on the queue", describe(sending))
            return False
        log.info("export %s retries (%d): %s", d.task_id, d.retries + 1, describe(exc))
        self._quietly(lambda: end_deliveries(self.context.redis, [(d, None)]), "reset the delivery counter")
        return True

    def _dead_letter(self, export: ExportDelivery, reason: str, attempts: int) -> bool:
        """File the export as `ApplyFailed`; while even that fails, keep the message and try again later."""
        try:
            with transaction(self.settings.database_url) as session:
                record_dead_letter(session, export.message, reason, attempts)
        except Exception as exc:
            log.warning("could not file a dead letter (%s); the export is kept and tried again", describe(exc))
            return self._send_retry(export, exc)
        log.warning("export filed as a dead letter: %s", reason)
        self._quietly(
            lambda: end_deliveries(self.context.redis, [(export.delivery, "failed")]), "record the dead letter's end"
        )
        return True

    @staticmethod
    def _quietly(action: Callable[[], None], what: str) -> None:
        try:
            action()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("could not %s: %s", what, describe(exc))

    def release_after_commit(self, outcome: Outcome) -> None:
        """Values the committed export freed that others wait for: release them now, not at the sweep.

        The export is committed whatever happens here; if the broker refuses the follow-up, the
        release sweep (beat) hands the values over later, so this never fails the export.
        """
        if not (outcome.freed_with_waiters and outcome.tenant and self.settings.fast_release):
            return
        try:
            send_release(self.context.app, outcome.tenant, list(outcome.freed_with_waiters))
        except Exception as exc:
            log.warning(
                "could not enqueue the fast release of %s in %s (%s); the release sweep will hand them over",
                list(outcome.freed_with_waiters),
                outcome.tenant,
                describe(exc),
            )

    def _sweep_after_crash(self, tenant: str | None) -> None:
        """A redelivered export found already applied: its first delivery died after the commit, maybe
        before it enqueued the fast release. Sweep the tenant now rather than at the next hourly sweep."""
        if tenant is None:
            return
        try:
            send_sweep(self.context.app, tenant)
        except Exception as exc:
            log.warning("could not enqueue a release sweep of %s (%s); the hourly one will run", tenant, describe(exc))

    def release(self, task: Any, tenant: str, keys: list[str]) -> list[str]:
        """Give each freed value to its earliest waiter; returns the values handed over."""
        released: list[str] = []
        for key in keys:
            try:
                outcome = self.context.applier.release(tenant, key)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                raise task.retry(
                    args=(tenant, keys[keys.index(key) :]), exc=exc, countdown=retry_delay(task.request.retries)
                ) from exc
            if outcome.status == "released":
                released.append(key)
                count_quarantines(self.context.redis, released=1)
                self.release_after_commit(outcome)
        return released


def register(app: Any, context: WorkerContext) -> ExportWork:
    """Register `apply_export` and `release_values` on `app`, configured from `context.settings`."""
    work = ExportWork(context)
    settings = context.settings

    @app.task(name=APPLY_EXPORT, **export_batch_options(settings))
    def apply_export(requests: list[SimpleRequest]) -> list[bool]:
        """Apply a batch of export messages; returns, per message, whether it finished (acknowledge it)."""
        return work.apply_batch(requests)

    @app.task(name=RELEASE_VALUES, bind=True, shared=False, max_retries=settings.export_retry_limit)
    def release_values(self: Any, tenant: str, keys: list[str]) -> list[str]:
        """Give each freed value to its earliest waiter; returns the values handed over."""
        return work.release(self, tenant, keys)

    return work
