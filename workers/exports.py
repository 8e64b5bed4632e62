"""`apply_export` and the fast-path `release_values`: parse, call `shared.apply`, follow up after commit.

`apply_export` never lets an exception decide a message's fate. A transient obstacle (busy locks, a
lost race, a database or Redis that does not answer) is retried with back-off; anything else, and a
transient error that outlasts the retries, is filed as a dead letter (`ApplyFailed`, with the raw
message) and acknowledged. A message whose worker keeps dying under it is filed the same way once
its delivery counter passes EXPORT_CRASH_LIMIT. Nothing is acknowledged without being applied or
recorded.
"""

from __future__ import annotations

import logging
import random
from functools import lru_cache
from typing import Any

from celery import Task
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.activity import count_quarantines
from shared.apply import ExportApplier, Outcome, RetryLater
from shared.db import transaction
from shared.deliveries import begin_delivery, end_delivery
from shared.failures import record_dead_letter
from shared.locks import LockManager, LocksBusy
from shared.settings import get_settings
from shared.task_names import (
    APPLY_EXPORT,
    MAINTENANCE_QUEUE,
    RELEASE_RESOLVED_CONFLICTS,
    RELEASE_VALUES,
    RELEASES_QUEUE,
)
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


@app.task(
    name=APPLY_EXPORT,
    bind=True,
    max_retries=get_settings().export_retry_limit,
    # A hard time limit kills the child: put the message back so the delivery counter sees it.
    acks_on_timeout=False,
)
def apply_export(self: Task, message: Any, batch: str | None = None, index: int | None = None) -> str:
    """Apply one export message; every way it can end is applied, skipped, or a recorded failure."""
    request = self.request
    limit = get_settings().export_crash_limit
    try:
        deliveries = begin_delivery(_redis(), request.id, request.retries, batch, index)
        outcome = applier().apply(message) if deliveries <= limit + 1 else None
    except Exception as exc:
        attempts = request.retries + 1
        if not is_transient(exc):
            log.exception("unexpected error applying an export; filing it as a dead letter")
            return _dead_letter(self, message, batch, index, f"unexpected error: {_describe(exc)}", attempts)
        if request.retries >= self.max_retries:
            return _dead_letter(
                self,
                message,
                batch,
                index,
                f"gave up after {attempts} attempts (EXPORT_RETRY_LIMIT is {self.max_retries}); "
                f"the last error: {_describe(exc)}",
                attempts,
            )
        _forget_delivery(request, batch, index)
        raise self.retry(exc=exc, countdown=_retry_delay(request.retries)) from exc
    if outcome is None:
        return _dead_letter(
            self,
            message,
            batch,
            index,
            f"its worker died {deliveries - 1} times while applying it (EXPORT_CRASH_LIMIT is {limit}); "
            "it is not tried again until 'syncguard failures retry'",
            deliveries - 1,
        )
    _release_after_commit(outcome)
    if outcome.newly_quarantined:
        count_quarantines(_redis(), opened=outcome.newly_quarantined)
    if outcome.status == "skipped" and deliveries > 1:
        _sweep_after_crash(outcome.tenant)
    end_delivery(_redis(), request.id, request.retries, batch, index, outcome.status)
    return outcome.status


def _sweep_after_crash(tenant: str | None) -> None:
    """A redelivered export found already applied: its first delivery died after the commit, maybe
    before it enqueued the fast release. Sweep the tenant now rather than at the next hourly sweep."""
    if tenant is None:
        return
    try:
        app.send_task(RELEASE_RESOLVED_CONFLICTS, kwargs={"tenant": tenant}, queue=MAINTENANCE_QUEUE)
    except Exception as exc:
        log.warning("could not enqueue a release sweep of %s (%s); the hourly one will run", tenant, _describe(exc))


def _forget_delivery(request: Any, batch: str | None, index: int | None) -> None:
    """Handing over to a retry is not a crash; a Redis that does not answer only costs the count."""
    try:
        end_delivery(_redis(), request.id, request.retries, batch, index, None)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning("could not reset the delivery counter: %s", _describe(exc))


def _dead_letter(task: Task, message: Any, batch: str | None, index: int | None, reason: str, attempts: int) -> str:
    """File the export as `ApplyFailed`; while even that fails, keep the message and try again later."""
    try:
        with transaction() as session:
            record_dead_letter(session, message, reason, attempts)
    except Exception as exc:
        log.warning("could not file a dead letter (%s); the export is kept and tried again", _describe(exc))
        retries = task.request.retries
        raise task.retry(exc=exc, countdown=_retry_delay(retries), max_retries=retries + 1) from exc
    log.warning("export filed as a dead letter: %s", reason)
    end_delivery(_redis(), task.request.id, task.request.retries, batch, index, "failed")
    return "failed"


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
