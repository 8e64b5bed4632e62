"""The processes a fault test starts, breaks and restarts itself, all on loopback.

A broker Redis of its own, durable the way docs/durability.md says (AOF, fsync every second,
never evict) on a fixed port and data directory, so it can be killed and started again with what it
had written; Celery worker nodes, each in its own process group, that can be killed with SIGKILL,
paused with SIGSTOP or shut down with SIGTERM; and a beat for the periodic redelivery.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from harness.local_services import REPO, ServiceFailed, Workers, free_port, redis_answers, stop_process_group, tail
from shared.messaging import RELEASES_QUEUE
from shared.settings import Settings
from shared.store.engine import get_engine, transaction
from tests.invariants import Findings, check_directory
from tests.services import TEST_DATABASE_URL, TEST_REDIS_URL, service_environment
from tests.workload import Workload

# Locks, progress and the pending ledger of the fault tests: a database of their own, so a beat
# here never re-sends a batch another test posted to the suite's shared broker.
FAULT_REDIS_URL = TEST_REDIS_URL.rsplit("/", 1)[0] + "/14"
BROKER_DURABILITY = ("--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction")

# Short enough that a fault heals within seconds: a killed worker's messages come back after the
# visibility timeout, its locks after the lock TTL, a lost message is re-sent after 8 + 2 * 2 s.
FAULT_SETTINGS = {
    "BROKER_VISIBILITY_TIMEOUT_S": "8",
    "LOCK_TTL_MS": "3000",
    "TASK_TIME_LIMIT_S": "30",
    "REDELIVERY_INTERVAL_S": "2",
}


def eventually(check: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout_s:g} s")
        time.sleep(poll_s)


def waiting_on_database_locks() -> int:
    """Backends of the test database waiting for a lock: a worker blocked inside its transaction."""
    with transaction() as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


@contextmanager
def open_transaction() -> Iterator[Connection]:
    """A transaction the test holds open (and rolls back): whatever it locks, workers wait for."""
    with get_engine(TEST_DATABASE_URL).connect() as connection:
        connection.begin()
        try:
            yield connection
        finally:
            connection.rollback()


def database_outage(seconds: float) -> int:
    """Make the test database unavailable: refuse new connections and cut every open one, for
    `seconds`; return how many connections were cut. Only this database, never the server."""
    url = make_url(TEST_DATABASE_URL)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    cut = 0
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false'))
            try:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    cut += connection.execute(
                        text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": url.database},
                    ).scalar_one()
                    time.sleep(0.2)
            finally:
                connection.execute(text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()
    return cut


class BrokerRedis:
    """A redis-server with AOF on a fixed port and directory: killed, it comes back with its queue."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"broker-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        return Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.log),
                "--save",
                "",
                *BROKER_DURABILITY,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while not redis_answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise ServiceFailed(f"the broker redis-server did not start:\n{tail(self.log)}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the AOF already holds survives."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace_s=10)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


class Node:
    """One `celery -A workers.app worker` node with its pool; signals go to the parent or the group."""

    def __init__(self, env: dict[str, str], log_dir: Path, concurrency: int = 1) -> None:
        self.workers = Workers(env, log_dir, nodes=1, concurrency=concurrency)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.workers.processes[0]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.workers.logs[0]

    def pool_pids(self) -> list[int]:
        return sorted(_children(self.pid))

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self) -> Node:
        self.workers.start()
        return self

    def kill9(self) -> None:
        """The whole node at once: parent (holding reserved messages) and the child mid-export."""
        os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM to the parent only, as Kubernetes and Docker send it: Celery's warm shutdown."""
        os.kill(self.pid, signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.workers.processes and self.alive():
            self.resume()
        self.workers.stop(grace_s=20)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Beat:
    """celery beat with its own RedBeat key prefix, so it schedules only for this test."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.log = log_dir / f"beat-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Beat:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.app",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.log_dir / "beat-schedule-unused"),
                "--logfile",
                str(self.log),
            ],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, grace_s=10)


@dataclass(frozen=True)
class Settled:
    """How a faulted run ended: what the producer's ledger and the store say once the queues are idle."""

    tenant: str
    exports: int
    finished: bool
    never_done: int
    counts: dict[str, int]
    findings: Findings

    @property
    def lost(self) -> int:
        return self.never_done + len(self.findings.lost)

    @property
    def duplicated(self) -> int:
        from shared.exports.post_ledger import APPLIED_AGAIN

        return len(self.findings.duplicated) + self.counts.get(APPLIED_AGAIN, 0)

    def assert_complete(self) -> None:
        """Every export finished, none failed or applied twice, and the store holds the last states."""
        from shared.exports.post_ledger import APPLIED_AGAIN
        from tests.workers.helpers import failures

        assert self.finished, f"{self.never_done} export(s) never finished"
        assert self.counts.get("failed", 0) == 0 and APPLIED_AGAIN not in self.counts, (
            self.counts,
            [f.message for f in failures(self.tenant)],
        )
        assert self.findings.clean, self.findings


class Cluster:
    """A test's broker, nodes and beat, and posting/waiting against them; stops everything it started."""

    def __init__(self, broker: BrokerRedis, log_dir: Path, redis: Redis, state: BrokerRedis | None = None) -> None:
        """`redis` is a client of REDIS_URL: `state`, a server of the test's own, or the suite's fault database."""
        self.broker, self.log_dir, self.redis, self.state = broker, log_dir, redis, state
        self.redis_url = state.url if state is not None else FAULT_REDIS_URL
        self.beat_prefix = f"sg-fault-beat-{uuid.uuid4().hex[:8]}:"
        self.nodes: list[Node] = []
        self.beats: list[Beat] = []

    def env(self, **overrides: str) -> dict[str, str]:
        return service_environment(
            CELERY_BROKER_URL=self.broker.url,
            REDIS_URL=self.redis_url,
            BEAT_KEY_PREFIX=self.beat_prefix,
            **{**FAULT_SETTINGS, **overrides},
        )

    @property
    def settings(self) -> Settings:
        return Settings(database_url=TEST_DATABASE_URL, redis_url=self.redis_url, celery_broker_url=self.broker.url)

    def node(self, concurrency: int = 1, start: bool = True, **env: str) -> Node:
        node = Node(self.env(**env), self.log_dir, concurrency)
        self.nodes.append(node)
        return node.start() if start else node

    def beat(self) -> Beat:
        beat = Beat(self.env(), self.log_dir).start()
        self.beats.append(beat)
        return beat

    def syncguard(self, *args: str, stdin: str | None = None, background: bool = False, **env: str) -> Any:
        """The CLI as its own process, configured like this cluster's workers."""
        command = [sys.executable, "-m", "shared.cli", *args]
        if background:
            return subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env(**env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        return subprocess.run(
            command,
            cwd=REPO,
            env=self.env(**env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def post(self, lines: list[str]) -> Any:
        from shared.exports.producer import post_exports

        return post_exports(lines, self.settings)

    def send_raw(self, messages: list[Any]) -> str:
        """Put messages on the queue exactly as given, past the producer's own validation, each bound to the
        tenant it names (as an older version sent them); returns the batch."""
        from shared.exports.producer import producer_app
        from shared.messaging import send_export

        app = producer_app(self.settings)
        batch = uuid.uuid4().hex
        with app.producer_or_acquire() as producer:
            for index, message in enumerate(messages):
                send_export(app, message, tenant=None, batch=batch, index=index, producer=producer)
        return batch

    def queued_indices(self, batch: str, queue: str = "exports") -> set[int]:
        """The batch lines whose messages sit on the broker's queue now."""
        found = set()
        for raw in self.broker.client().lrange(queue, 0, -1):
            kwargs = json.loads(base64.b64decode(json.loads(raw)["body"]))[1]
            if kwargs.get("batch") == batch:
                found.add(int(kwargs["index"]))
        return found

    def queued_release_keys(self) -> set[str]:
        """The values whose fast release (`release_values`) sits on the broker's queue now."""
        keys: set[str] = set()
        for raw in self.broker.client().lrange(RELEASES_QUEUE, 0, -1):
            args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
            keys.update(args[1])
        return keys

    def pending_indices(self, batch: str) -> set[int]:
        """The batch lines not done yet, from the producer's pending ledger."""
        from shared.exports.post_ledger import pending

        return {p.index for p in pending(self.redis, batch)}

    def done(self, batch: str) -> int:
        from shared.exports.post_ledger import done_count

        return done_count(self.redis, batch)

    def wait(self, batch: str, expected: int, timeout_s: float) -> bool:
        from shared.exports.post_ledger import wait_for

        return wait_for(self.redis, batch, expected, timeout_s, poll_s=0.1)

    def outcomes(self, batch: str) -> dict[str, int]:
        from shared.exports.post_ledger import outcomes

        return outcomes(self.redis, batch)

    def settle(self, tenant: Any, workload: Workload, batch: str, timeout_s: float) -> Settled:
        """Wait for the batch and an idle broker, then read the ledger and check the store."""
        finished = self.wait(batch, len(workload.lines), timeout_s=timeout_s)
        self.wait_until_idle()
        return Settled(
            tenant=tenant.name,
            exports=len(workload.lines),
            finished=finished,
            never_done=len(workload.lines) - self.done(batch),
            counts=self.outcomes(batch),
            findings=check_directory(tenant.id, workload.final, workload.final.last_sequence),
        )

    def wait_until_idle(self, timeout_s: float = 60) -> None:
        """Nothing queued and nothing unacknowledged on the broker: follow-up releases and sweeps included."""
        broker = self.broker.client()

        def idle() -> bool:
            return not any(broker.llen(q) for q in ("exports", "releases", "maintenance")) and not broker.hlen(
                "unacked"
            )

        def settled() -> bool:
            if not idle():
                return False
            time.sleep(0.3)  # a follow-up task may be on its way
            return idle()

        eventually(settled, timeout_s, "broker idle")

    def stop(self) -> None:
        for beat in self.beats:
            beat.stop()
        for node in self.nodes:
            node.stop()
        self.broker.stop()
        if self.state is not None:
            self.state.stop()
