"""The health checks in docker-compose.yml and deploy/ tell a live process from a dead one.

Each check is taken verbatim from the file that ships it and run against the process that file starts
(a worker, beat, the API), on a private Redis: it must pass while the process runs and fail once it is gone.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.local_services import free_port, private_redis, stop_process_group, tail
from tests.services import service_environment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)


def compose_service(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


def compose_health_command(name: str) -> list[str]:
    test = compose_service(name)["healthcheck"]["test"]
    return ["sh", "-c", test[1].replace("$$", "$")] if test[0] == "CMD-SHELL" else test[1:]


def manifest_container(file_name: str) -> dict[str, Any]:
    (deployment,) = [
        d for d in yaml.safe_load_all((REPO / "deploy" / file_name).read_text()) if d["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The image's environment, on a Redis of its own: `celery` and `python` resolve to this venv."""
    with private_redis(tmp_path) as redis_url:
        yield service_environment(
            REDIS_URL=redis_url,
            CELERY_BROKER_URL=redis_url,
            PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            HOSTNAME=socket.gethostname(),  # what Docker and Kubernetes set, and what Celery's %h expands to
        )


@contextmanager
def started(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process, grace_s=20)


def probe(command: list[str], env: dict[str, str], cwd: Path) -> int:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, timeout=60, check=False).returncode


def until(passes: Any, timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not passes():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:g} s; the process said:\n{tail(log)}")
        time.sleep(0.5)


def test_worker_probes_pass_for_a_live_worker_and_fail_without_it(env: dict[str, str], tmp_path: Path) -> None:
    container = manifest_container("worker-deployment.yaml")
    checks = {
        "kubernetes readiness": container["readinessProbe"]["exec"]["command"],
        "kubernetes liveness": container["livenessProbe"]["exec"]["command"],
        "compose healthcheck": compose_health_command("worker"),
    }
    log = tmp_path / "worker.log"
    with started(container["command"], env, log, REPO) as worker:
        until(lambda: " ready." in log.read_text(errors="replace"), 60, "the worker was not ready", log)
        for name, command in checks.items():
            assert probe(command, env, REPO) == 0, f"{name} fails for a live worker:\n{tail(log)}"
        stop_process_group(worker, grace_s=20)
    # Each waits out its own --timeout for a reply that never comes: run them side by side.
    with ThreadPoolExecutor(len(checks)) as pool:
        codes = dict(zip(checks, pool.map(lambda command: probe(command, env, REPO), checks.values()), strict=True))
    assert all(code != 0 for code in codes.values()), f"passing with no worker running: {codes}"


def test_beat_probes_pass_while_beat_holds_its_lock(env: dict[str, str], tmp_path: Path) -> None:
    container = manifest_container("beat-deployment.yaml")
    checks = {
        "kubernetes liveness": container["livenessProbe"]["exec"]["command"],
        "compose healthcheck": compose_health_command("beat"),
    }
    log = tmp_path / "beat.log"
    for name, command in checks.items():
        assert probe(command, env, tmp_path) != 0, f"{name} passes before beat started"
    with started(container["command"], env, log, tmp_path) as beat:
        until(lambda: all(probe(c, env, tmp_path) == 0 for c in checks.values()), 40, "beat was not seen alive", log)
        stop_process_group(beat, grace_s=20)
    # RedBeat gives its lock back on a clean stop; a killed beat's lock would expire within 30 s.
    until(lambda: all(probe(c, env, tmp_path) != 0 for c in checks.values()), 40, "beat still looks alive", log)


def test_api_health_checks_answer_through_the_shipped_command(env: dict[str, str], tmp_path: Path) -> None:
    command = compose_service("api")["command"]
    port = free_port()
    # Loopback and a free port instead of 0.0.0.0:8000: other tests may hold 8000 on this machine.
    command = [*command[: command.index("--host")], "--host", "127.0.0.1", "--port", str(port)]
    health = [part.replace(":8000/", f":{port}/") for part in compose_health_command("api")]
    assert health != compose_health_command("api"), "the compose check no longer names port 8000"
    readiness = manifest_container("api-deployment.yaml")["readinessProbe"]["httpGet"]
    log = tmp_path / "api.log"
    with started(command, env, log, REPO):
        until(lambda: probe(health, env, REPO) == 0, 60, "the compose health check did not pass", log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{readiness['path']}", timeout=10) as response:
            assert response.status == 200
    assert probe(health, env, REPO) != 0, "the compose health check passes with the API stopped"
