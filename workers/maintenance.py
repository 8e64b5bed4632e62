"""Periodic work run by celery-beat: the release sweep (safety net, and history pruning), the error reports,
and redelivery.

The beat entries live here, beside the tasks they run; `register` installs both on the app that
`workers.app.create_app` builds, from the settings it was built with. Queues come from the one
routing table (`shared.messaging.TASK_ROUTES`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.directory.history import prune_conflict_history
from shared.exports.redelivery import redeliver_stranded
from shared.messaging import REDELIVER_STRANDED_EXPORTS, RELEASE_RESOLVED_CONFLICTS, SEND_ERROR_REPORTS
from shared.metrics.activity import count_quarantines
from shared.release.sweep import sweep
from shared.reports.sending import send_error_reports as send_reports
from shared.settings import Settings
from workers.context import WorkerContext


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every entry expires before its next run, so a backlog never piles up duplicate sweeps."""
    return {
        "release-resolved-conflicts": {
            "task": RELEASE_RESOLVED_CONFLICTS,
            "schedule": timedelta(seconds=settings.release_interval_s),
            "options": {"expires": settings.release_interval_s * 0.9},
        },
        "send-error-reports": {
            "task": SEND_ERROR_REPORTS,
            "schedule": timedelta(seconds=settings.report_interval_s),
            "options": {"expires": settings.report_interval_s * 0.9},
        },
        "redeliver-stranded-exports": {
            "task": REDELIVER_STRANDED_EXPORTS,
            "schedule": timedelta(seconds=settings.redelivery_interval_s),
            "options": {"expires": settings.redelivery_interval_s * 0.9},
        },
    }


def register(app: Any, context: WorkerContext) -> None:
    """Register the periodic tasks on `app` and install their beat schedule."""
    settings = context.settings

    @app.task(name=RELEASE_RESOLVED_CONFLICTS, bind=True, shared=False)
    def release_resolved_conflicts(
        self: Any, cursor: list[Any] | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Sweep in bounded time; an unfinished sweep re-enqueues itself from where it stopped."""
        result = sweep(
            context.applier,
            tenant=tenant,
            batch_size=settings.sweep_batch_size,
            budget_s=settings.sweep_task_budget_s,
            after=(int(cursor[0]), str(cursor[1])) if cursor else None,
            concurrency=settings.sweep_concurrency,
        )
        if result.released:
            count_quarantines(context.redis, released=result.released)
        if not result.finished:
            self.apply_async(kwargs={"cursor": list(result.cursor or ()), "tenant": tenant})
        pruned = 0
        if result.finished and tenant is None:  # the hourly sweep also keeps the history to its retention
            pruned = prune_conflict_history(settings)
        return {
            "examined": result.examined,
            "released": result.released,
            "finished": result.finished,
            "historyPruned": pruned,
        }

    @app.task(name=SEND_ERROR_REPORTS, shared=False)
    def send_error_reports(tenant: str | None = None) -> list[str]:
        return [outcome.describe() for outcome in send_reports(settings, context.lock_manager, tenant)]

    @app.task(name=REDELIVER_STRANDED_EXPORTS, shared=False)
    def redeliver_stranded_exports() -> dict[str, Any]:
        """Send again the posted exports the broker lost (see shared.exports.redelivery)."""
        result = redeliver_stranded(context.redis, app, settings)
        return {"resent": result.resent, "batches": result.batches, "queueBusy": result.queue_busy}

    app.conf.beat_schedule = beat_schedule(settings)
