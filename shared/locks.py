"""Value locks: key naming, sorting, all-or-nothing acquisition with a TTL, release by token.

An export locks its own object key plus every UPN/SMTP value key the object holds or wants, in one
Lua call: either every key is taken or none is, so two exports can never hold half of each other's
keys and deadlock. Keys carry the tenant as a Redis Cluster hash tag, so one tenant's keys share a
slot and the script stays legal on a cluster.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from redis import Redis

_ACQUIRE = """
for i, key in ipairs(KEYS) do
    if redis.call('exists', key) == 1 then return i end
end
for _, key in ipairs(KEYS) do
    redis.call('set', key, ARGV[1], 'PX', ARGV[2])
end
return 0
"""

_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[1] then
        redis.call('del', key)
        released = released + 1
    end
end
return released
"""


class LocksBusy(Exception):
    """Another export holds one of the keys; retry later with jitter."""

    def __init__(self, key: str) -> None:
        super().__init__(f"lock {key!r} is held by another export")
        self.key = key


def object_lock_key(tenant: str, source_anchor: str) -> str:
    return f"sg:{{{tenant}}}:object:{source_anchor}"


def value_lock_key(tenant: str, value_key: str) -> str:
    return f"sg:{{{tenant}}}:value:{value_key}"


def export_lock_keys(tenant: str, source_anchor: str | None, value_keys: Iterable[str]) -> list[str]:
    """The sorted, de-duplicated keys one export (or release) must hold."""
    keys = {value_lock_key(tenant, v) for v in value_keys}
    if source_anchor is not None:
        keys.add(object_lock_key(tenant, source_anchor))
    return sorted(keys)


class LockManager:
    """Takes and gives back sets of keys on one Redis; one instance per process."""

    def __init__(self, redis: Redis, ttl_ms: int = 30_000) -> None:
        self.redis = redis
        self.ttl_ms = ttl_ms
        self._acquire = redis.register_script(_ACQUIRE)
        self._release = redis.register_script(_RELEASE)

    def try_acquire(self, keys: list[str]) -> str:
        """Take every key or none, in one round trip; return the token that releases them."""
        token = secrets.token_hex(16)
        busy = int(self._acquire(keys=keys, args=[token, self.ttl_ms]))
        if busy:
            raise LocksBusy(keys[busy - 1])
        return token

    def release(self, keys: list[str], token: str) -> int:
        """Give back the keys still ours; an expired key taken by another is left alone."""
        return int(self._release(keys=keys, args=[token]))

    @contextmanager
    def holding(self, keys: list[str], wait_s: float) -> Iterator[str]:
        """Hold `keys` for the block, spinning with jittered back-off for up to `wait_s`."""
        deadline = time.monotonic() + wait_s
        delay = 0.002
        while True:
            try:
                token = self.try_acquire(keys)
                break
            except LocksBusy:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, 0.1)
        try:
            yield token
        finally:
            self.release(keys, token)
