"""Periodic work run by celery-beat: the release sweep (safety net) and the error reports.

The beat entries live here, beside the tasks they run, and are installed when this module is
imported; worker and beat import it through the app's `include` before the scheduler starts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Task

from shared.exports.redelivery import redeliver_stranded
from shared.messaging import (
    MAINTENANCE_QUEUE,
    REDELIVER_STRANDED_EXPORTS,
    RELEASE_RESOLVED_CONFLICTS,
    SEND_ERROR_REPORTS,
)
from shared.metrics.activity import count_quarantines
from shared.release.sweep import sweep
from shared.reports.sending import send_error_reports as send_reports
from shared.settings import Settings, get_settings
from workers.app import app
from workers.exports import _redis, applier, lock_manager


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every entry expires before its next run, so a backlog never piles up duplicate sweeps."""
    return {
        "release-resolved-conflicts": {
            "task": RELEASE_RESOLVED_CONFLICTS,
            "schedule": timedelta(seconds=settings.release_interval_s),
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.release_interval_s * 0.9},
        },
        "send-error-reports": {
            "task": SEND_ERROR_REPORTS,
            "schedule": timedelta(seconds=settings.report_interval_s),
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.report_interval_s * 0.9},
        },
        "redeliver-stranded-exports": {
            "task": REDELIVER_STRANDED_EXPORTS,
            "schedule": timedelta(seconds=settings.redelivery_interval_s),
            "options": {"queue": MAINTENANCE_QUEUE, "expires": settings.redelivery_interval_s * 0.9},
        },
    }


@app.task(name=RELEASE_RESOLVED_CONFLICTS, bind=True)
def release_resolved_conflicts(
    self: Task, cursor: list[Any] | None = None, tenant: str | None = None
) -> dict[str, Any]:
    """Sweep in bounded time; an unfinished sweep re-enqueues itself from where it stopped."""
    settings = get_settings()
    result = sweep(
        applier(),
        tenant=tenant,
        batch_size=settings.sweep_batch_size,
        budget_s=settings.sweep_task_budget_s,
        after=(int(cursor[0]), str(cursor[1])) if cursor else None,
        concurrency=settings.sweep_concurrency,
    )
    if result.released:
        count_quarantines(_redis(), released=result.released)
    if not result.finished:
        self.apply_async(kwargs={"cursor": list(result.cursor or ()), "tenant": tenant}, queue=MAINTENANCE_QUEUE)
    return {"examined": result.examined, "released": result.released, "finished": result.finished}


@app.task(name=SEND_ERROR_REPORTS)
def send_error_reports(tenant: str | None = None) -> list[str]:
    return [outcome.describe() for outcome in send_reports(get_settings(), lock_manager(), tenant)]


@app.task(name=REDELIVER_STRANDED_EXPORTS)
def redeliver_stranded_exports() -> dict[str, Any]:
    """Send again the posted exports the broker lost (see shared.exports.redelivery)."""
    result = redeliver_stranded(_redis(), app, get_settings())
    return {"resent": result.resent, "batches": result.batches, "queueBusy": result.queue_busy}


app.conf.beat_schedule = beat_schedule(get_settings())
