"""The first README command, end to end: scripts/demo.py with a real worker, SQLite and Redis.

It runs with this interpreter (the venv creation in scripts/demo is the shell's part) against its own
Redis database, so the suite's workers on the test database never take the demo's messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import TEST_REDIS_URL

REPO = Path(__file__).resolve().parent.parent
DEMO_REDIS_URL = TEST_REDIS_URL.rsplit("/", 1)[0] + "/9"  # a database no other test uses

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_output() -> str:
    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_BROKER_URL", "DATABASE_URL", "SMTP_HOST"}}
    env["REDIS_URL"] = DEMO_REDIS_URL
    run = subprocess.run(
        [sys.executable, "scripts/demo.py"],
        check=False,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"demo failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
    assert run.stdout.rstrip().endswith("done.")
    return run.stdout


def table_rows(output: str, title: str) -> list[list[str]]:
    """The table printed under the line starting with `title`, cut into cells by the rule's columns."""
    lines = output.split("\n" + title, 1)[1].splitlines()[1:]
    rule = lines[1]
    assert rule.startswith("---"), lines[:2]
    spans: list[tuple[int, int | None]] = [match.span() for match in re.finditer(r"-+", rule)]
    spans[-1] = (spans[-1][0], None)  # a last cell may be longer than the rule
    rows = []
    for line in lines[2:]:
        if not line.strip():
            break
        rows.append([line[start:end].strip() for start, end in spans])
    return rows


def test_every_step_ran_and_every_export_applied(demo_output: str) -> None:
    for step in range(1, 7):
        assert f"[{step}/6]" in demo_output
    assert "enqueued 23 export(s)" in demo_output
    assert re.search(r"outcomes: applied 23\b", demo_output), demo_output


def test_the_sample_conflicts_are_quarantined_not_failed(demo_output: str) -> None:
    errors = {(row[1], row[2].lower()) for row in table_rows(demo_output, "Provisioning errors:")}
    assert errors == {
        ("UserPrincipalName", "alice@demo.example"),
        ("ProxyAddresses", "smtp:bob@demo.example"),
        ("ProxyAddresses", "smtp:dave@demo.example"),
        ("ProxyAddresses", "smtp:sales@demo.example"),
        ("ProxyAddresses", "smtp:marketing@demo.example"),
    }
    assert "Failed exports: 0" in demo_output


def test_objects_hold_what_the_rules_say(demo_output: str) -> None:
    rows = table_rows(demo_output, "Objects in tenant 'demo':")
    objects = {row[1]: row for row in rows if row[0]}  # rows without a type carry further addresses
    assert "Helpdesk Contractor" not in objects, "the deleted user is not a live object"
    assert "Dave Jones (Finance)" in objects, "the update with sequence 2 applied"
    placeholders = [
        name
        for name in ("Alice Wong", "Alice Walker")
        if re.fullmatch(r"alice\+\d{4}@demo\.onmicrosoft\.com", objects[name][2])
    ]
    assert len(placeholders) == 1, "exactly one Alice gets a placeholder UPN"
    assert objects["Helpdesk"][3] == "SMTP:helpdesk@demo.example", "the freed address was released to the group"
    marketing = [
        name for name in ("Marketing", "Marketing Team") if objects[name][3].lower() == "smtp:marketing@demo.example"
    ]
    assert len(marketing) == 1, "exactly one group holds the shared address"
