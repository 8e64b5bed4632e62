"""The lock module on real Redis: all-or-nothing, sorted, expiring, released only by its token."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from redis import Redis

from shared.locks import manager as locks_module
from shared.locks.manager import LockManager, LocksBusy, export_lock_keys, object_lock_key, value_lock_key


@pytest.fixture
def locks(redis_client: Redis) -> LockManager:
    return LockManager(redis_client, ttl_ms=2_000)


@pytest.fixture
def tenant_name() -> str:
    return f"lk-{uuid.uuid4().hex[:8]}"


def test_keys_are_sorted_unique_and_share_the_tenants_hash_slot(tenant_name: str) -> None:
    keys = export_lock_keys(tenant_name, "anchor", ["b@x.com", "a@x.com", "b@x.com"])
    assert keys == sorted(keys) and len(keys) == 3
    assert all(f"{{{tenant_name}}}" in key for key in keys)
    assert object_lock_key(tenant_name, "anchor") in keys and value_lock_key(tenant_name, "a@x.com") in keys


def test_acquisition_is_all_or_nothing(locks: LockManager, redis_client: Redis, tenant_name: str) -> None:
    held = export_lock_keys(tenant_name, None, ["b@x.com"])
    wanted = export_lock_keys(tenant_name, "obj", ["a@x.com", "b@x.com", "c@x.com"])
    token = locks.try_acquire(held)
    with pytest.raises(LocksBusy) as busy:
        locks.try_acquire(wanted)
    assert busy.value.key == value_lock_key(tenant_name, "b@x.com")
    assert [redis_client.exists(k) for k in wanted if k not in held] == [0, 0, 0]
    locks.release(held, token)
    assert locks.release(wanted, locks.try_acquire(wanted)) == len(wanted)


def test_a_lock_expires_and_a_stale_token_cannot_release_the_new_holder(redis_client: Redis, tenant_name: str) -> None:
    short = LockManager(redis_client, ttl_ms=100)
    keys = export_lock_keys(tenant_name, "obj", ["v@x.com"])
    stale = short.try_acquire(keys)
    time.sleep(0.25)
    fresh = short.try_acquire(keys)
    assert short.release(keys, stale) == 0
    assert all(redis_client.get(k) == fresh.encode() for k in keys)
    short.release(keys, fresh)


def test_holding_waits_for_a_busy_key_and_gives_up_after_its_wait(locks: LockManager, tenant_name: str) -> None:
    keys = export_lock_keys(tenant_name, "obj", ["w@x.com"])
    token = locks.try_acquire(keys)
    threading.Timer(0.2, locks.release, args=(keys, token)).start()
    started = time.monotonic()
    with locks.holding(keys, wait_s=3):
        waited = time.monotonic() - started
    assert 0.15 < waited < 3
    token = locks.try_acquire(keys)
    with pytest.raises(LocksBusy), locks.holding(keys, wait_s=0.1):
        pass
    locks.release(keys, token)


def test_a_waiter_is_woken_by_the_release_not_by_its_timeout(
    locks: LockManager, tenant_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks_module, "_WAKE_WAIT_S", 30.0)  # only the release's wake-up can end the wait soon
    keys = export_lock_keys(tenant_name, "obj", ["wake@x.com"])
    token = locks.try_acquire(keys)
    released_at: list[float] = []

    def release() -> None:
        released_at.append(time.monotonic())
        locks.release(keys, token)

    threading.Timer(0.3, release).start()
    with locks.holding(keys, wait_s=60):
        acquired_at = time.monotonic()
    assert acquired_at - released_at[0] < 2.0, "the waiter slept through the release"


def test_a_wake_up_nobody_waits_for_costs_one_retry_not_a_wrong_answer(
    locks: LockManager, redis_client: Redis, tenant_name: str
) -> None:
    keys = export_lock_keys(tenant_name, "obj", ["stale@x.com"])
    redis_client.rpush(f"{keys[0]}:wake", 1)  # left by a waiter that gave up
    holder = locks.try_acquire(keys)
    with pytest.raises(LocksBusy), locks.holding(keys, wait_s=0.2):
        pass
    locks.release(keys, holder)


def test_concurrent_contenders_never_hold_overlapping_sets_at_once(locks: LockManager, tenant_name: str) -> None:
    inside: list[int] = []
    overlaps: list[int] = []
    guard = threading.Lock()

    def contend(n: int) -> None:
        keys = export_lock_keys(tenant_name, f"o{n}", ["shared@x.com", f"own{n}@x.com"])
        for _ in range(20):
            with locks.holding(keys, wait_s=10):
                with guard:
                    inside.append(n)
                    if len(inside) > 1:
                        overlaps.append(n)
                time.sleep(0.001)
                with guard:
                    inside.remove(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
