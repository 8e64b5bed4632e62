"""The Celery app, built explicitly from syncguard's settings.

Start a worker with `celery -A workers.app worker`; it consumes every syncguard queue unless `-Q`
narrows it. `create_app(settings)` builds an app with every task registered on that settings;
nothing reads the environment when this module is imported. The module attribute `app`, which the
`celery -A workers.app` contract asks for, is built from the environment on first access.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu import Queue  # type: ignore[attr-defined]

from shared.messaging import EXPORTS_QUEUE, QUEUES, TASK_ROUTES
from shared.settings import Settings
from shared.store.engine import forget_inherited_connections
from workers import diagnostics, exports, maintenance, preflight
from workers.context import WorkerContext


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings()
    app = Celery("syncguard", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # An export is applied idempotently (sequence check, full desired state), so redelivery is safe;
        # acking late means a crashed worker's export is delivered again instead of lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=settings.prefetch_multiplier,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        # Redis redelivers unacked messages after the visibility timeout: keep it above any task's life.
        # Each worker looks for such messages every few seconds, not kombu's default of every 100 s.
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "unacked_restore_interval": min(10, max(1, settings.visibility_timeout_s // 4)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_queues=tuple(Queue(name) for name in QUEUES),  # type: ignore[no-untyped-call]
        task_default_queue=EXPORTS_QUEUE,
        task_routes=TASK_ROUTES,
        enable_utc=True,
        timezone="UTC",
        # RedBeat keeps the schedule in Redis behind a lock: a second beat process waits instead of
        # double-scheduling, and takes over within the lock timeout if the first one dies.
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix=settings.beat_key_prefix,
        redbeat_lock_key=f"{settings.beat_key_prefix}lock",
        redbeat_lock_timeout=30,
        beat_max_loop_interval=5,
    )
    context = WorkerContext(app, settings)
    exports.register(app, context)
    maintenance.register(app, context)
    diagnostics.register(app, settings)
    preflight.check_redis_at_start(app, settings)
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """`workers.app.app`: the app of this process, built from the environment on first use."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app


@signals.worker_process_init.connect
def _fresh_connections_after_fork(**_: object) -> None:
    forget_inherited_connections()
