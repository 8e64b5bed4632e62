"""A post's share of the broker is bounded (POST_MAX_OUTSTANDING): it holds while the workers are away
and goes on, losing nothing, as they apply what it sent. A million-line initial load therefore never
parks gigabytes in Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis
from sqlalchemy import func, select

from harness.local_services import Workers, private_redis
from shared.exports.post_ledger import outcomes
from shared.exports.producer import LEDGER_CHUNK
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, Tenant
from tests.conftest import export_line
from tests.services import service_environment

LINES = 1_000
LIMIT = 300


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _post(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`syncguard post FILE --json` as an operator runs it, on the given Redis."""
    command = [sys.executable, "-m", "shared.cli", "post", str(path), "--json"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _lines(tmp_path: Path, tenant: Tenant, prefix: str) -> Path:
    path = tmp_path / f"{prefix}.jsonl"
    lines = [
        export_line(tenant.name, f"{prefix}{n}", userPrincipalName=f"{prefix}{n}@contoso.com") for n in range(LINES)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_post_holds_at_its_limit_until_the_workers_apply_what_it_sent(tmp_path: Path, tenant: Tenant) -> None:
    with private_redis(tmp_path) as url:
        env = service_environment(REDIS_URL=url, CELERY_BROKER_URL=url, POST_MAX_OUTSTANDING=str(LIMIT))
        broker = Redis.from_url(url)
        poster = _post(_lines(tmp_path, tenant, "bp"), env)
        # Chunks of LEDGER_CHUNK go out while fewer than LIMIT wait: the chunk that passes it is the last.
        held_at = (LIMIT // LEDGER_CHUNK + 1) * LEDGER_CHUNK
        _wait_until(lambda: broker.llen("exports") >= held_at, 60)
        time.sleep(1.0)
        assert poster.poll() is None, "the post ran on with nobody applying"
        assert broker.llen("exports") == held_at, "nothing more is sent while the workers are away"

        with Workers(env, tmp_path, concurrency=2):
            out, err = poster.communicate(timeout=180)
            assert poster.returncode == 0, err
            result = json.loads(out)
            assert result["enqueued"] == LINES
            _wait_until(lambda: sum(outcomes(broker, result["batch"]).values()) == LINES, 120)
            assert outcomes(broker, result["batch"]) == {"applied": LINES}
    with transaction() as session:
        stored = session.scalar(
            select(func.count())
            .select_from(DirectoryObject)
            .join(Tenant, Tenant.id == DirectoryObject.tenant_id)
            .where(Tenant.name == tenant.name)
        )
    assert stored == LINES


def test_a_limit_of_zero_never_holds(tmp_path: Path, tenant: Tenant) -> None:
    with private_redis(tmp_path) as url:
        env = service_environment(REDIS_URL=url, CELERY_BROKER_URL=url, POST_MAX_OUTSTANDING="0")
        out, err = _post(_lines(tmp_path, tenant, "nz"), env).communicate(timeout=120)
        assert json.loads(out)["enqueued"] == LINES == Redis.from_url(url).llen("exports"), err
