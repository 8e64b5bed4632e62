"""The lock module on real Redis: all-or-nothing, sorted, expiring, released only by its token."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis import Redis

from shared.locks import manager as locks_module
from shared.locks.manager import LockManager, LocksBusy, export_lock_keys, object_lock_key, value_lock_key
from tests.services import TEST_REDIS_URL


@pytest.fixture
def locks(redis_client: Redis) -> LockManager:
    return LockManager(redis_client, ttl_ms=2_000)


@pytest.fixture
def tenant_name() -> str:
    return f"lk-{uuid.uuid4().hex[:8]}"


def eventually(condition: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    """A deadline that fails loudly, not a measurement."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s"
        time.sleep(0.01)


def release_once_waited_for(locks: LockManager, redis: Redis, keys: list[str], token: str, events: list[str]) -> None:
    """The holder gives the keys back only once a waiter has said it waits (the busy key's count)."""

    def release() -> None:
        try:
            eventually(lambda: bool(redis.exists(f"{keys[0]}:waiters")), "a waiter counted on the busy key")
        except AssertionError as nobody:
            events.append(str(nobody))  # the test's check of `events` says so
        events.append("released")
        locks.release(keys, token)

    threading.Thread(target=release, daemon=True).start()


class WakeRecordingRedis(Redis):
    """Redis that notes what each blocking wait for a release returned: a wake-up, or None (timed out)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wake_ups: list[Any] = []

    def blpop(self, keys: Any, timeout: Any = 0) -> Any:
        popped = super().blpop(keys, timeout)
        self.wake_ups.append(popped)
        return popped


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
    eventually(lambda: not redis_client.exists(*keys), "the keys expired")
    fresh = short.try_acquire(keys)
    assert short.release(keys, stale) == 0
    assert all(redis_client.get(k) == fresh.encode() for k in keys)
    short.release(keys, fresh)


def test_holding_waits_for_a_busy_key_and_gives_up_after_its_wait(
    locks: LockManager, redis_client: Redis, tenant_name: str
) -> None:
    keys = export_lock_keys(tenant_name, "obj", ["w@x.com"])
    token = locks.try_acquire(keys)
    events: list[str] = []
    release_once_waited_for(locks, redis_client, keys, token, events)
    with locks.holding(keys, wait_s=30) as mine:
        events.append("acquired")
        assert [redis_client.get(k) for k in keys] == [mine.encode()] * len(keys), "the waiter holds every key"
    assert events == ["released", "acquired"], "the waiter went in before the holder gave the keys back"
    token = locks.try_acquire(keys)
    with pytest.raises(LocksBusy), locks.holding(keys, wait_s=0.1):
        pass
    locks.release(keys, token)


def test_a_waiter_is_woken_by_the_release_not_by_its_timeout(
    locks: LockManager, redis_client: Redis, tenant_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(locks_module, "_WAKE_WAIT_S", 30.0)  # a wait that times out would outlast the test
    keys = export_lock_keys(tenant_name, "obj", ["wake@x.com"])
    token = locks.try_acquire(keys)
    waiter_redis = WakeRecordingRedis.from_url(TEST_REDIS_URL)
    waiter = LockManager(waiter_redis, ttl_ms=2_000)
    events: list[str] = []

    def wait_for_the_keys() -> None:
        try:
            with waiter.holding(keys, wait_s=60):
                events.append("acquired")
        except Exception as exc:  # the test's check of `events` shows it
            events.append(f"the waiter failed: {exc!r}")

    thread = threading.Thread(target=wait_for_the_keys, daemon=True)
    thread.start()
    release_once_waited_for(locks, redis_client, keys, token, events)
    thread.join(timeout=15)
    assert not thread.is_alive(), "the waiter slept through the release"
    assert events == ["released", "acquired"]
    assert waiter_redis.wake_ups == [(f"{keys[0]}:wake".encode(), b"1")], "the waiter was not woken by the release"
    waiter_redis.close()


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
