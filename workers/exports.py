"""`apply_export` and the fast-path `release_values`: parse, call `shared.apply`, follow up after commit."""

from __future__ import annotations

import logging
import random
from functools import lru_cache
from typing import Any

from celery import Task
from redis import Redis
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.apply import ExportApplier, Outcome, RetryLater
from shared.locks import LockManager, LocksBusy
from shared.progress import mark_done
from shared.settings import get_settings
from shared.task_names import APPLY_EXPORT, RELEASE_VALUES, RELEASES_QUEUE
from workers.app import app

log = logging.getLogger(__name__)


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


def _retry_delay(retries: int) -> float:
    """Jittered, growing back-off so racing exports spread out instead of colliding again."""
    return random.uniform(0.05, 0.2) * min(2**retries, 32)


def _release_after_commit(outcome: Outcome) -> None:
    """Values the committed export freed that others wait for: release them now, not at the sweep."""
    if outcome.freed_with_waiters and outcome.tenant and get_settings().fast_release:
        release_values.apply_async((outcome.tenant, list(outcome.freed_with_waiters)), queue=RELEASES_QUEUE)


@app.task(name=APPLY_EXPORT, bind=True, max_retries=get_settings().export_retry_limit)
def apply_export(self: Task, message: Any, batch: str | None = None, index: int | None = None) -> str:
    """Apply one export message; invalid ones are recorded as failed exports and acknowledged."""
    try:
        outcome = applier().apply(message)
    except (LocksBusy, RetryLater, OperationalError, DBAPIError) as exc:
        if self.request.retries >= self.max_retries:
            _mark(batch, index, "gave-up")
            raise
        raise self.retry(exc=exc, countdown=_retry_delay(self.request.retries)) from exc
    _release_after_commit(outcome)
    _mark(batch, index, outcome.status)
    return outcome.status


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
            _release_after_commit(outcome)
    return released


def _mark(batch: str | None, index: int | None, status: str) -> None:
    if batch is not None and index is not None:
        mark_done(_redis(), batch, index, status)
