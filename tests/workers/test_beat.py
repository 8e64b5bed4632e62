"""celery-beat: the schedule itself, and exactly one beat scheduling even when two are started."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from shared.messaging import (
    MAINTENANCE_QUEUE,
    REDELIVER_STRANDED_EXPORTS,
    RELEASE_RESOLVED_CONFLICTS,
    SEND_ERROR_REPORTS,
    TASK_ROUTES,
)
from shared.settings import Settings
from tests.services import REPO, TEST_REDIS_URL, service_environment
from workers.maintenance import beat_schedule


def test_the_schedule_runs_the_sweep_the_report_and_the_redelivery_with_expiry_from_settings() -> None:
    schedule = beat_schedule(Settings(release_interval_s=3600, report_interval_s=900, redelivery_interval_s=60))
    by_task = {entry["task"]: entry for entry in schedule.values()}
    assert set(by_task) == {RELEASE_RESOLVED_CONFLICTS, SEND_ERROR_REPORTS, REDELIVER_STRANDED_EXPORTS}
    assert by_task[RELEASE_RESOLVED_CONFLICTS]["schedule"].total_seconds() == 3600
    assert by_task[SEND_ERROR_REPORTS]["schedule"].total_seconds() == 900
    assert by_task[REDELIVER_STRANDED_EXPORTS]["schedule"].total_seconds() == 60
    for entry in schedule.values():
        interval = entry["schedule"].total_seconds()
        assert 0 < entry["options"]["expires"] < interval, "a run that waited a whole period is dropped"
        assert TASK_ROUTES[entry["task"]]["queue"] == MAINTENANCE_QUEUE, "beat's work goes to the maintenance queue"


def test_the_worker_app_uses_the_locking_beat_scheduler() -> None:
    from workers.app import app

    app.loader.import_default_modules()  # what worker and beat do before scheduling
    assert app.conf.beat_scheduler == "redbeat.RedBeatScheduler"
    assert set(app.conf.beat_schedule) == set(beat_schedule(Settings()))


@pytest.mark.integration
def test_two_beats_started_at_once_schedule_each_task_once_per_period(tmp_path: Path) -> None:
    broker = TEST_REDIS_URL.rsplit("/", 1)[0] + "/12"  # nothing consumes it: each message is one scheduling
    Redis.from_url(broker).flushdb()
    prefix = f"sg-test-beat-{uuid.uuid4().hex[:8]}:"
    interval = 1.0
    env = service_environment(
        CELERY_BROKER_URL=broker,
        BEAT_KEY_PREFIX=prefix,
        RELEASE_INTERVAL_S=str(interval),
        REPORT_INTERVAL_S=str(interval),
        REDELIVERY_INTERVAL_S=str(interval),
    )
    logs = [tmp_path / f"beat-{n}.log" for n in range(2)]
    beats = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.app",
                "beat",
                "--loglevel",
                "DEBUG",
                "--schedule",
                str(tmp_path / f"unused-{n}"),
                "--logfile",
                str(log),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for n, log in enumerate(logs)
    ]
    try:
        deadline = time.monotonic() + 30
        while not any("Sending due task" in log.read_text(errors="replace") for log in logs if log.exists()):
            assert time.monotonic() < deadline, "no beat scheduled anything in 30 s"
            time.sleep(0.2)
        started = time.monotonic()
        time.sleep(8)
        elapsed = time.monotonic() - started
    finally:
        for beat in beats:
            beat.terminate()
        for beat in beats:
            beat.wait(timeout=20)
    senders = [log for log in logs if "Sending due task" in log.read_text(errors="replace")]
    assert len(senders) == 1, "only the beat holding the lock may schedule"
    broker_redis = Redis.from_url(broker)
    messages = broker_redis.lrange(MAINTENANCE_QUEUE, 0, -1)
    tasks = (RELEASE_RESOLVED_CONFLICTS, SEND_ERROR_REPORTS, REDELIVER_STRANDED_EXPORTS)
    counts = Counter(next(task for task in tasks if task.encode() in m) for m in messages)
    periods = elapsed / interval
    for task in tasks:
        assert periods - 2 <= counts[task] <= periods + 3, f"{task} ran {counts[task]} times in {periods:.0f} periods"
    broker_redis.flushdb()
    for key in Redis.from_url(TEST_REDIS_URL).scan_iter(f"{prefix}*"):
        Redis.from_url(TEST_REDIS_URL).delete(key)
