"""Giving quarantined values back (docs/design.md §1.7, release): fast path on real workers, and the sweep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from shared.core.values import value_key
from shared.exports.applier import ExportApplier
from shared.release.sweep import sweep
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.services import TEST_REDIS_URL, Workers, running_workers
from tests.workers.helpers import (
    ObjectView,
    object_view,
    post_and_wait,
    wait_until_idle,
)

pytestmark = pytest.mark.integration


def eventually(check: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def view(tenant: Tenant, anchor: str) -> ObjectView:
    found = object_view(tenant.name, anchor)
    assert found is not None, f"{anchor} does not exist"
    return found


def holds(tenant: Tenant, anchor: str, key: str) -> bool:
    found = object_view(tenant.name, anchor)
    return found is not None and key in found.held


def test_a_deleted_holder_gives_the_upn_back_and_the_placeholder_is_freed(
    tenant: Tenant, redis_client: Redis, workers: Workers
) -> None:
    post_and_wait(redis_client, [export_line(tenant.name, "first", userPrincipalName="kim@contoso.com")])
    post_and_wait(redis_client, [export_line(tenant.name, "second", userPrincipalName="kim@contoso.com")])
    placeholder = view(tenant, "second").upn
    assert placeholder is not None and "+" in placeholder
    post_and_wait(redis_client, [export_line(tenant.name, "first", sequence=2, operation="delete")])
    eventually(lambda: holds(tenant, "second", "kim@contoso.com"))
    second = view(tenant, "second")
    assert second.upn == "kim@contoso.com" and second.entries == []
    assert value_key(placeholder) not in second.held


def test_a_holder_changing_its_upn_lets_the_waiter_have_it(
    tenant: Tenant, redis_client: Redis, workers: Workers
) -> None:
    post_and_wait(redis_client, [export_line(tenant.name, "a", userPrincipalName="lee@contoso.com")])
    post_and_wait(redis_client, [export_line(tenant.name, "b", userPrincipalName="lee@contoso.com")])
    post_and_wait(redis_client, [export_line(tenant.name, "a", sequence=2, userPrincipalName="lee.a@contoso.com")])
    eventually(lambda: holds(tenant, "b", "lee@contoso.com"))
    assert view(tenant, "b").upn == "lee@contoso.com" and view(tenant, "b").entries == []
    assert view(tenant, "a").upn == "lee.a@contoso.com"


def test_a_holder_dropping_a_proxy_address_hands_it_to_the_waiting_group(
    tenant: Tenant, redis_client: Redis, workers: Workers
) -> None:
    post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name,
                "u",
                userPrincipalName="u@contoso.com",
                proxyAddresses=["SMTP:u@contoso.com", "smtp:help@contoso.com"],
            )
        ],
    )
    post_and_wait(
        redis_client, [export_line(tenant.name, "g", "Group", proxyAddresses=["SMTP:help@contoso.com", "X500:/o=g"])]
    )
    assert view(tenant, "g").proxy_addresses == ["X500:/o=g"]
    post_and_wait(
        redis_client,
        [
            export_line(
                tenant.name, "u", sequence=2, userPrincipalName="u@contoso.com", proxyAddresses=["SMTP:u@contoso.com"]
            )
        ],
    )
    eventually(lambda: holds(tenant, "g", "help@contoso.com"))
    assert view(tenant, "g").proxy_addresses == ["SMTP:help@contoso.com", "X500:/o=g"]
    assert view(tenant, "g").entries == []


def test_three_waiters_get_the_value_in_quarantine_order_one_at_a_time(
    tenant: Tenant, redis_client: Redis, workers: Workers
) -> None:
    def contact(anchor: str, sequence: int = 1, op: str = "add") -> str:
        return export_line(tenant.name, anchor, "Contact", sequence, op, proxyAddresses=["SMTP:desk@contoso.com"])

    post_and_wait(redis_client, [contact("holder")])
    for waiter in ("w1", "w2", "w3"):
        post_and_wait(redis_client, [contact(waiter)])
    assert view(tenant, "w3").entries[0]["conflictingObjectId"] == view(tenant, "holder").object_id
    for leaving, next_in_line, still_waiting in (
        ("holder", "w1", ["w2", "w3"]),
        ("w1", "w2", ["w3"]),
        ("w2", "w3", []),
    ):
        post_and_wait(redis_client, [contact(leaving, 2, "delete")])
        eventually(lambda who=next_in_line: holds(tenant, who, "desk@contoso.com"))
        wait_until_idle(redis_client)
        for waiter in still_waiting:
            assert len(view(tenant, waiter).entries) == 1 and "desk@contoso.com" not in view(tenant, waiter).held


def test_the_sweep_releases_everything_free_when_nothing_else_did(tenant: Tenant, applier: ExportApplier) -> None:
    """In-process applies never enqueue a fast release, so only the sweep can hand these back."""
    for n in range(5):
        applier.apply(export_line(tenant.name, f"holder{n}", userPrincipalName=f"v{n}@contoso.com"))
        applier.apply(export_line(tenant.name, f"waiter{n}", "Contact", proxyAddresses=[f"SMTP:v{n}@contoso.com"]))
    for n in range(4):
        applier.apply(export_line(tenant.name, f"holder{n}", sequence=2, operation="delete"))
    assert not holds(tenant, "waiter0", "v0@contoso.com")
    result = sweep(applier, tenant=tenant.name, batch_size=2)
    assert (result.released, result.finished) == (4, True)
    assert result.batches >= 2
    for n in range(4):
        assert holds(tenant, f"waiter{n}", f"v{n}@contoso.com") and view(tenant, f"waiter{n}").entries == []
    assert len(view(tenant, "waiter4").entries) == 1
    assert sweep(applier, tenant=tenant.name).released == 0


def test_a_concurrent_sweep_hands_each_free_value_to_its_earliest_waiter_once(
    tenant: Tenant, applier: ExportApplier
) -> None:
    """Four threads at once; `both` is first in line for two values, whose releases meet at its object lock."""
    for n in range(12):
        applier.apply(export_line(tenant.name, f"holder{n}", userPrincipalName=f"c{n}@contoso.com"))
    applier.apply(
        export_line(tenant.name, "both", "Contact", proxyAddresses=["SMTP:c10@contoso.com", "smtp:c11@contoso.com"])
    )
    for n in range(12):
        applier.apply(export_line(tenant.name, f"first{n}", "Contact", proxyAddresses=[f"SMTP:c{n}@contoso.com"]))
        applier.apply(export_line(tenant.name, f"second{n}", "Contact", proxyAddresses=[f"SMTP:c{n}@contoso.com"]))
    for n in range(12):
        applier.apply(export_line(tenant.name, f"holder{n}", sequence=2, operation="delete"))
    result = sweep(applier, tenant=tenant.name, batch_size=5, concurrency=4)
    assert (result.released, result.finished) == (12, True)
    assert view(tenant, "both").entries == []
    assert holds(tenant, "both", "c10@contoso.com") and holds(tenant, "both", "c11@contoso.com")
    for n in range(12):
        expected_first = 1 if n >= 10 else 0
        assert len(view(tenant, f"first{n}").entries) == expected_first
        assert holds(tenant, f"first{n}", f"c{n}@contoso.com") == (n < 10)
        assert len(view(tenant, f"second{n}").entries) == 1
    assert sweep(applier, tenant=tenant.name, concurrency=4).released == 0


@pytest.fixture(scope="module")
def slow_path_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workers, str]]:
    """Workers on a broker of their own with the fast path switched off by its setting."""
    broker = TEST_REDIS_URL.rsplit("/", 1)[0] + "/13"
    Redis.from_url(broker).flushdb()
    log_dir = Path(tmp_path_factory.mktemp("slow-workers"))
    with running_workers(1, 1, log_dir, CELERY_BROKER_URL=broker, FAST_RELEASE="false") as processes:
        yield processes, broker


def test_with_the_fast_path_off_only_the_sweep_task_releases(
    tenant: Tenant, slow_path_workers: tuple[Workers, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.exports.post_ledger import wait_for
    from shared.exports.producer import post_exports, producer_app
    from shared.messaging import send_sweep
    from shared.settings import Settings

    _, broker = slow_path_workers
    monkeypatch.setenv("CELERY_BROKER_URL", broker)  # Celery lets this variable win over any argument
    settings = Settings(celery_broker_url=broker)
    redis = Redis.from_url(TEST_REDIS_URL)

    def post(*lines: str) -> None:
        result = post_exports(list(lines), settings)
        assert wait_for(redis, result.batch, result.enqueued, 60)

    post(export_line(tenant.name, "h", userPrincipalName="slow@contoso.com"))
    post(export_line(tenant.name, "w", userPrincipalName="slow@contoso.com"))
    post(export_line(tenant.name, "h", sequence=2, operation="delete"))
    time.sleep(1.0)
    assert not holds(tenant, "w", "slow@contoso.com"), "nothing but the sweep may release here"
    send_sweep(producer_app(settings), tenant.name)
    eventually(lambda: holds(tenant, "w", "slow@contoso.com"))
    assert view(tenant, "w").upn == "slow@contoso.com"


def test_workers_count_each_new_quarantine_and_each_release_for_the_metrics(
    tenant: Tenant, redis_client: Redis, workers: Workers
) -> None:
    from shared.metrics.activity import totals

    before = totals(redis_client)
    post_and_wait(redis_client, [export_line(tenant.name, "first", userPrincipalName="counted@contoso.com")])
    post_and_wait(redis_client, [export_line(tenant.name, "second", userPrincipalName="counted@contoso.com")])
    post_and_wait(
        redis_client, [export_line(tenant.name, "second", sequence=2, userPrincipalName="counted@contoso.com")]
    )
    assert totals(redis_client).quarantines_opened - before.quarantines_opened == 1, "a kept entry is not new"
    post_and_wait(redis_client, [export_line(tenant.name, "first", sequence=2, operation="delete")])
    eventually(lambda: holds(tenant, "second", "counted@contoso.com"))
    eventually(lambda: totals(redis_client).quarantines_released - before.quarantines_released == 1)
