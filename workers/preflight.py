"""A worker or beat refuses to start on a Redis that may evict keys (shared/preflight).

`check_redis_at_start(app, settings)` arms the check for one app: a worker runs it as a bootstep, beat
on `beat_init`. Both run after logging is set up and before anything is consumed or scheduled, so a
refusal lands in the process's log and nothing has been taken off a queue. The refusal is a
SystemExit (exit 1) because Celery logs and swallows an Exception raised by a signal handler.
"""

from __future__ import annotations

import logging
from typing import Any
from weakref import WeakKeyDictionary

from celery import Celery, bootsteps, signals

from shared.preflight.redis_policy import EvictingRedis, require_noeviction
from shared.settings import Settings

log = logging.getLogger(__name__)
_settings_of: WeakKeyDictionary[Celery, Settings] = WeakKeyDictionary()  # for beat's signal, which names no app


def start_only_on_noeviction(settings: Settings) -> None:
    try:
        require_noeviction(settings)
    except EvictingRedis as refusal:
        log.critical("syncguard refuses to start: %s", refusal)
        raise SystemExit(1) from None


def check_redis_at_start(app: Celery, settings: Settings) -> None:
    class RefuseAnEvictingRedis(bootsteps.Step):  # type: ignore[misc]
        """Built as the worker applies its blueprint, before the pool and the consumer are created."""

        def __init__(self, parent: Any, **options: Any) -> None:
            super().__init__(parent, **options)
            start_only_on_noeviction(settings)

    app.steps["worker"].add(RefuseAnEvictingRedis)
    _settings_of[app] = settings


@signals.beat_init.connect
def _refuse_an_evicting_redis_for_beat(sender: Any, **_: object) -> None:
    settings = _settings_of.get(sender.app)
    if settings is not None:  # else an app check_redis_at_start never saw: not ours to check
        start_only_on_noeviction(settings)
