"""What a worker process's tasks share: the settings the app was built with, and its connections.

`create_app(settings)` builds one and hands it to every module that registers tasks, so tasks never
read settings of their own. Connections open on first use, which is after the pool forks.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from redis import Redis

from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.settings import Settings


class WorkerContext:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app  # celery.Celery, which ships no type information
        self.settings = settings

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)

    @cached_property
    def lock_manager(self) -> LockManager:
        return LockManager(self.redis, ttl_ms=self.settings.lock_ttl_ms)

    @cached_property
    def applier(self) -> ExportApplier:
        return ExportApplier(self.lock_manager, self.settings)
