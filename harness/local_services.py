"""Start syncguard's moving parts on one machine: a private Redis, worker processes.

Used by the demo, the benchmarks and the integration tests, so all three start and stop
processes the same way (a process group each, SIGTERM for Celery's warm shutdown, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from redis import Redis

REPO = Path(__file__).resolve().parent.parent


class ServiceFailed(RuntimeError):
    """A local process did not start; the message points at its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except Exception:
        return False


def stop_process_group(process: subprocess.Popen[Any], grace_s: float = 30) -> None:
    """SIGTERM the process and its children (a warm shutdown for Celery), SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def tail(log: Path, lines: int = 20) -> str:
    if not log.exists():
        return f"({log} does not exist)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def private_redis(workdir: Path, *extra_args: str) -> Iterator[str]:
    """A throw-away redis-server on a free loopback port; by default it keeps nothing on disk."""
    port = free_port()
    log = workdir / f"redis-{port}.log"
    args = ["--save", "", "--appendonly", "no", *extra_args]
    process = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--logfile",
            str(log),
            "--daemonize",
            "no",
            *args,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServiceFailed(f"the private redis-server did not start:\n{tail(log)}")
            time.sleep(0.05)
        yield url
    finally:
        stop_process_group(process, grace_s=10)


def healthz_is_ok(url: str) -> bool:
    """Whether `url`/healthz answers 200: the API is up and so are its database and Redis."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@contextmanager
def uvicorn_api(
    env: dict[str, str],
    log: Path,
    *,
    ready: Callable[[str], bool] = healthz_is_ok,
    timeout_s: float = 30,
    port: int | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`uvicorn api.app:app` as an operator starts it, on `port` (a free loopback port by default), ready
    once `ready(url)` holds; yields its URL and process, and stops its whole process group at the end."""
    port = port or free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not ready(url):
            if process.poll() is not None:
                raise ServiceFailed(f"uvicorn exited with {process.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise ServiceFailed(f"the API was not ready within {timeout_s:g} s:\n{tail(log)}")
            time.sleep(0.1)
        yield url, process
    finally:
        stop_process_group(process, grace_s=10)


class Workers:
    """`celery -A workers.app worker` nodes as real processes, each in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        nodes: int = 1,
        concurrency: int = 2,
        pool: str = "prefork",
        queues: str | None = None,
    ) -> None:
        self.env, self.log_dir = env, log_dir
        self.nodes, self.concurrency, self.pool, self.queues = nodes, concurrency, pool, queues
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(self, ready_timeout_s: float = 60) -> None:
        tag = uuid.uuid4().hex[:6]
        for n in range(self.nodes):
            log = self.log_dir / f"worker-{tag}-{n}.log"
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.app",
                "worker",
                "--pool",
                self.pool,
                "--concurrency",
                str(self.concurrency),
                "--hostname",
                f"w{n}-{tag}@%h",
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--logfile",
                str(log),
            ]
            if self.queues:
                command += ["--queues", self.queues]
            self.logs.append(log)
            self.processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + ready_timeout_s
        while not all(log.exists() and " ready." in log.read_text(errors="replace") for log in self.logs):
            for process, log in zip(self.processes, self.logs, strict=True):
                if process.poll() is not None:
                    raise ServiceFailed(f"a worker exited with {process.returncode} while starting:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise ServiceFailed(f"workers not ready after {ready_timeout_s:g} s:\n{tail(self.logs[0])}")
            time.sleep(0.1)

    def stop(self, grace_s: float = 30) -> None:
        for process in self.processes:
            stop_process_group(process, grace_s)

    def __enter__(self) -> Workers:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
