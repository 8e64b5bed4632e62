"""celery-beat: the schedule itself, and exactly one beat scheduling even when two are started."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Scheduling:
    """One message a beat put on the maintenance queue."""

    beat_pid: int
    task: str
    task_id: str
    raw: bytes


def schedulings(broker: Redis, beats: Collection[int]) -> list[Scheduling]:
    """The messages `beats` scheduled, oldest first (kombu pushes on the left), others' ignored."""
    found = []
    for raw in reversed(broker.lrange(MAINTENANCE_QUEUE, 0, -1)):
        headers = json.loads(raw)["headers"]
        origin = re.fullmatch(r"gen(\d+)@.*", headers["origin"])
        if origin and int(origin[1]) in beats:
            found.append(Scheduling(int(origin[1]), headers["task"], headers["id"], raw))
    return found


def in_rounds(tasks: list[str], names: Collection[str]) -> bool:
    """Tasks of one period come round together: none is scheduled again before every other has been."""
    counts = Counter(dict.fromkeys(names, 0))
    for task in tasks:
        counts[task] += 1
        if max(counts.values()) - min(counts.values()) > 1:
            return False
    return True


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """A deadline that fails loudly, not a measurement: beats need seconds to start and hand over."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s"
        time.sleep(0.1)


@pytest.mark.integration
def test_of_two_beats_only_the_lock_holder_schedules_and_the_other_takes_over_when_it_stops(
    tmp_path: Path,
) -> None:
    """Exactly one beat schedules (docs/design.md): the second waits on RedBeat's lock, sends nothing
    while the first holds it, and takes over once the first stops; each schedules the tasks round by
    round, every message once. Only events are asserted; how fast beat ticks is left to timing."""
    broker_url = TEST_REDIS_URL.rsplit("/", 1)[0] + "/12"  # nothing consumes it: each message is one scheduling
    broker = Redis.from_url(broker_url)
    prefix = f"sg-test-beat-{uuid.uuid4().hex[:8]}:"
    env = service_environment(
        CELERY_BROKER_URL=broker_url,
        BEAT_KEY_PREFIX=prefix,
        RELEASE_INTERVAL_S="1",
        REPORT_INTERVAL_S="1",
        REDELIVERY_INTERVAL_S="1",
    )
    tasks = (RELEASE_RESOLVED_CONFLICTS, SEND_ERROR_REPORTS, REDELIVER_STRANDED_EXPORTS)
    logs = {}
    beats: dict[int, subprocess.Popen[bytes]] = {}
    for n in range(2):
        log = tmp_path / f"beat-{n}.log"
        command = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "DEBUG"]
        command += ["--schedule", str(tmp_path / f"unused-{n}"), "--logfile", str(log)]
        beat = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        beats[beat.pid], logs[beat.pid] = beat, log

    def log_of(pid: int) -> str:
        return logs[pid].read_text(errors="replace") if logs[pid].exists() else ""

    def sent_by(pid: int) -> list[Scheduling]:
        return [s for s in schedulings(broker, beats) if s.beat_pid == pid]

    try:
        wait_for(lambda: len(schedulings(broker, beats)) >= 3 * len(tasks), 60, "three rounds scheduled")
        holder = schedulings(broker, beats)[0].beat_pid
        (standby,) = set(beats) - {holder}
        while_held = schedulings(broker, beats)
        assert {s.beat_pid for s in while_held} == {holder}, "the second beat scheduled without the lock"
        assert beats[standby].poll() is None, f"the second beat died: {log_of(standby)[-2000:]}"
        assert "beat: Acquiring lock" in log_of(standby), "the second beat is not waiting for the lock"
        assert "beat: Acquired lock" not in log_of(standby), "both beats hold the lock"

        beats[holder].terminate()
        beats[holder].wait(timeout=20)
        wait_for(lambda: len(sent_by(standby)) >= len(tasks), 60, "the second beat took over")
        for beat in beats.values():
            beat.terminate()
            beat.wait(timeout=20)

        sent = schedulings(broker, beats)
        by = [s.beat_pid for s in sent]
        assert holder not in by[by.index(standby) :], "the second beat scheduled while the first still did"
        assert sent[: len(while_held)] == while_held
        for pid in (holder, standby):
            names = [s.task for s in sent if s.beat_pid == pid]
            assert set(names) == set(tasks) and in_rounds(names, tasks), f"beat {pid} scheduled {names}"
        assert len({s.task_id for s in sent}) == len(sent), "a scheduling was sent twice"
    finally:
        for beat in beats.values():
            beat.terminate()
            beat.wait(timeout=20)
        for scheduling in schedulings(broker, beats):
            broker.lrem(MAINTENANCE_QUEUE, 1, scheduling.raw)
        state = Redis.from_url(TEST_REDIS_URL)
        for key in state.scan_iter(f"{prefix}*"):
            state.delete(key)
