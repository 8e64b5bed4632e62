"""Fault-suite fixtures, and the table of faults injected / exports sent / lost / duplicated.

Every fault test records one row; the table is printed at the end of the run and written to
test-artifacts/faults.json, so the figures quoted in the closing note come from the last run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import pytest
from redis import Redis

from shared.cli.text_tables import render_table
from tests.conftest import ARTIFACTS
from tests.faults.cluster import FAULT_REDIS_URL, BrokerRedis, Cluster

FAULTS_JSON = ARTIFACTS / "faults.json"


@dataclass(frozen=True)
class FaultRow:
    test: str
    fault: str
    injected: int
    sent: int
    lost: int
    duplicated: int
    seconds: float


_rows: list[FaultRow] = []


@pytest.fixture(scope="session")
def fault_redis() -> Redis:
    client = Redis.from_url(FAULT_REDIS_URL)
    client.flushdb()
    return client


@pytest.fixture
def cluster(tmp_path: Path, fault_redis: Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A broker of this test's own (AOF on), and whatever nodes and beat the test starts.

    The fault database (locks, progress, the pending ledger) is emptied before and after, so a beat
    of one test never re-sends what another test left pending.
    """
    fault_redis.flushdb()
    broker = BrokerRedis(tmp_path)
    broker.start()
    # Celery lets this variable win over any broker argument, also in this (the producer's) process.
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    running = Cluster(broker, tmp_path, fault_redis)
    try:
        yield running
    finally:
        running.stop()
        fault_redis.flushdb()


@pytest.fixture
def own_redis_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """As `cluster`, but REDIS_URL (locks, the post ledger, delivery counters, RedBeat) is a second
    redis-server of the test's own, durable like the broker, so the test can kill it too."""
    broker, state = BrokerRedis(tmp_path / "broker"), BrokerRedis(tmp_path / "state")
    monkeypatch.setenv("CELERY_BROKER_URL", broker.url)
    running = Cluster(broker, tmp_path, Redis.from_url(state.url), state=state)
    try:
        for server in (broker, state):
            server.workdir.mkdir()
            server.start()
        yield running
    finally:
        running.stop()


class RecordFault(Protocol):
    def __call__(self, fault: str, injected: int, sent: int, lost: int, duplicated: int, seconds: float) -> None: ...


@pytest.fixture
def record_fault(request: pytest.FixtureRequest) -> RecordFault:
    """Record this test's row of the fault table: what was injected, sent, lost and duplicated."""

    def record(fault: str, injected: int, sent: int, lost: int, duplicated: int, seconds: float) -> None:
        _rows.append(FaultRow(request.node.name, fault, injected, sent, lost, duplicated, round(seconds, 1)))
        ARTIFACTS.mkdir(exist_ok=True)
        FAULTS_JSON.write_text(json.dumps([asdict(row) for row in _rows], indent=2) + "\n")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _rows:
        return
    terminalreporter.section("faults injected")
    table = render_table(
        ["Fault", "Injected", "Exports sent", "Lost", "Duplicated", "Seconds"],
        ([r.fault, r.injected, r.sent, r.lost, r.duplicated, r.seconds] for r in _rows),
        max_width=80,
    )
    terminalreporter.write_line(table)
    totals = (sum(r.injected for r in _rows), sum(r.sent for r in _rows), sum(r.lost for r in _rows))
    terminalreporter.write_line(
        f"total: {totals[0]} faults, {totals[1]} exports, {totals[2]} lost, "
        f"{sum(r.duplicated for r in _rows)} duplicated (written to {FAULTS_JSON})"
    )
