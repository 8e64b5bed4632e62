"""Several "hosts" on one machine: Linux network namespaces joined by veth pairs the test makes itself.

One namespace plays the database host (a bridge holding its address, a private Redis and a private
PostgreSQL listening there); the others each run a Celery worker that reaches those services only over
its veth. Every name carries a per-run tag and everything is removed on the way out, also after a failure.
Addresses come from 10.231.0.0/24 and exist only inside the namespaces created here; the root namespace
gets no interface and no address. The test process stays in the root namespace and reaches the two
servers through their Unix sockets, which are files and so not confined to a network namespace.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import create_engine, text

from harness.local_services import REPO, ServiceFailed, stop_process_group, tail

SUBNET_PREFIX = "10.231.0"
DATABASE_HOST_ADDRESS = f"{SUBNET_PREFIX}.1"
POSTGRES_USER = "postgres"  # initdb and postgres refuse to run as root


def run(*command: str) -> None:
    """Run a setup command; a failure names the command and what it printed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip()}")


def require_network_namespaces() -> None:
    """Fail (never skip) with the reason when this machine cannot make test hosts."""
    if os.geteuid() != 0:
        pytest.fail("the multi-host test creates network namespaces and veth pairs: run it as root")
    if shutil.which("ip") is None:
        pytest.fail("the multi-host test needs `ip` from iproute2 (apt-get install iproute2)")
    probe = f"sg-probe-{uuid.uuid4().hex[:6]}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"`ip netns add` is not available here, so no test hosts can be made: {result.stderr.strip()}")
    run("ip", "netns", "del", probe)


@dataclass
class TestNetwork:
    """A bridge in the database host's namespace and one veth from each worker host plugged into it."""

    __test__ = False  # not a test class, despite the name

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # worker namespace -> its end of the veth

    @property
    def database_host(self) -> str:
        return f"sg-db-{self.tag}"

    def create(self, worker_hosts: int) -> list[str]:
        """Make the database host and `worker_hosts` worker hosts; return the worker namespaces."""
        self._add_namespace(self.database_host)
        bridge = f"sgbr{self.tag}"
        run("ip", "-n", self.database_host, "link", "add", bridge, "type", "bridge")
        run("ip", "-n", self.database_host, "addr", "add", f"{DATABASE_HOST_ADDRESS}/24", "dev", bridge)
        run("ip", "-n", self.database_host, "link", "set", bridge, "up")
        workers = []
        for n in range(1, worker_hosts + 1):
            namespace = f"sg-w{n}-{self.tag}"
            self._add_namespace(namespace)
            inside, plugged = f"sg{self.tag}w{n}", f"sg{self.tag}b{n}"
            # Both ends are made directly in their namespaces: the root namespace never holds either.
            run(
                "ip",
                "link",
                "add",
                inside,
                "netns",
                namespace,
                "type",
                "veth",
                "peer",
                "name",
                plugged,
                "netns",
                self.database_host,
            )
            run("ip", "-n", self.database_host, "link", "set", plugged, "master", bridge, "up")
            run("ip", "-n", namespace, "addr", "add", f"{SUBNET_PREFIX}.{10 + n}/24", "dev", inside)
            run("ip", "-n", namespace, "link", "set", inside, "up")
            self.links[namespace] = inside
            workers.append(namespace)
        return workers

    def set_link(self, namespace: str, up: bool) -> None:
        """Take a worker host's veth down (its route to the database host goes with it) or back up."""
        run("ip", "-n", namespace, "link", "set", self.links[namespace], "up" if up else "down")

    def _add_namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def remove(self) -> None:
        """Kill whatever still runs inside, then delete the namespaces (their veths and bridge go with them)."""
        errors = []
        for namespace in reversed(self.namespaces):
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
            for pid in pids.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            result = subprocess.run(["ip", "netns", "del", namespace], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                errors.append(f"{namespace}: {result.stderr.strip()}")
        self.namespaces.clear()
        if errors:
            raise RuntimeError("could not remove the test namespaces: " + "; ".join(errors))

    def leftovers(self) -> list[str]:
        """Namespaces and interfaces of this run still present anywhere (the root namespace included)."""
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
        return [line for line in (names + links).splitlines() if self.tag in line]


def in_namespace(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


def wait_until(ready: Any, process: subprocess.Popen[Any], log: Path, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process.poll() is not None:
            raise ServiceFailed(f"{what} exited with {process.returncode}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceFailed(f"{what} did not answer within {timeout_s:g} s:\n{tail(log)}")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        if url.startswith("postgresql"):
            engine = create_engine(url, connect_args={"connect_timeout": 2})
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            finally:
                engine.dispose()
            return True
        return bool(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except Exception:
        return False


@contextmanager
def namespaced_redis(namespace: str, workdir: Path) -> Iterator[str]:
    """A redis-server on the database host's address (no persistence); yields its Unix socket's URL."""
    socket_path = workdir / "redis.sock"
    log = workdir / "redis.log"
    process = subprocess.Popen(
        in_namespace(
            namespace,
            "redis-server",
            "--bind",
            DATABASE_HOST_ADDRESS,
            "--port",
            "6379",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            # Protected mode refuses every address but loopback without a password; this one listens on
            # the test subnet alone.
            "--protected-mode",
            "no",
            "--dir",
            str(workdir),
            "--logfile",
            str(log),
            "--daemonize",
            "no",
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"unix://{socket_path}?db=0"
    try:
        wait_until(lambda: answers(url), process, log, "the test hosts' redis-server")
        yield url
    finally:
        stop_process_group(process, grace_s=10)


def postgres_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.fail("the multi-host test starts its own PostgreSQL: install it (apt-get install postgresql)")
    return Path(found[-1]).parent


@contextmanager
def namespaced_postgres(namespace: str) -> Iterator[str]:
    """A throw-away PostgreSQL cluster listening on the database host's address; yields a socket URL.

    The shared cluster on 127.0.0.1 is never touched: this one has its own data directory, made by
    initdb as the `postgres` user (PostgreSQL refuses root), with trust auth for the test subnet only.
    """
    binaries = postgres_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="sg-scale-pg-"))
    shutil.chown(workdir, POSTGRES_USER, POSTGRES_USER)
    data, log = workdir / "data", workdir / "postgres.log"
    as_postgres = ["setpriv", f"--reuid={POSTGRES_USER}", f"--regid={POSTGRES_USER}", "--clear-groups", "--"]
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [*as_postgres, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET_PREFIX}.0/24 trust\n")
        process = subprocess.Popen(
            in_namespace(
                namespace,
                *as_postgres,
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-c",
                f"listen_addresses={DATABASE_HOST_ADDRESS}",
                "-c",
                "port=5432",
                "-c",
                f"unix_socket_directories={workdir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ),
            stdin=subprocess.DEVNULL,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        admin = f"postgresql+psycopg://postgres@/postgres?host={workdir}&port=5432"
        wait_until(lambda: answers(admin), process, log, "the test hosts' PostgreSQL")
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("CREATE DATABASE syncguard"))
        engine.dispose()
        yield f"postgresql+psycopg://postgres@/syncguard?host={workdir}&port=5432"
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # fast shutdown: end sessions, do not wait for clients
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


class NamespacedWorker:
    """`celery -A workers.app worker` run inside one worker host's namespace."""

    def __init__(self, namespace: str, name: str, env: dict[str, str], log: Path, concurrency: int) -> None:
        self.namespace, self.name, self.log = namespace, name, log
        command = in_namespace(
            namespace,
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "--hostname",
            f"{name}@{namespace}",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--logfile",
            str(log),
        )
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> bool:
        return self.log.exists() and " ready." in self.log.read_text(errors="replace")

    def applied(self) -> int:
        """Exports this worker ran to completion, counted from its own log."""
        text_ = self.log.read_text(errors="replace") if self.log.exists() else ""
        batched = sum(int(m) for m in re.findall(r"applied a batch of (\d+) exports", text_))
        return batched + text_.count("applied an export alone")

    def stop(self) -> None:
        stop_process_group(self.process, grace_s=30)


@contextmanager
def namespaced_beat(namespace: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`celery -A workers.app beat` inside one host's namespace, stopped when the block ends."""
    process = subprocess.Popen(
        in_namespace(
            namespace,
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log.with_suffix(".schedule-unused")),
            "--logfile",
            str(log),
        ),
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop_process_group(process, grace_s=10)


@contextmanager
def namespaced_workers(
    namespaces: list[str], env: dict[str, str], log_dir: Path, concurrency: int = 2
) -> Iterator[list[NamespacedWorker]]:
    with ExitStack() as stack:
        workers = []
        for n, namespace in enumerate(namespaces, start=1):
            worker = NamespacedWorker(namespace, f"w{n}", env, log_dir / f"{namespace}.log", concurrency)
            stack.callback(worker.stop)
            workers.append(worker)
        for worker in workers:
            wait_until(worker.ready, worker.process, worker.log, f"the worker in {worker.namespace}", timeout_s=60)
        yield workers
