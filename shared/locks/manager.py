"""Value locks: key naming, sorting, all-or-nothing acquisition with a TTL, release by token.

An export locks its own object key plus every UPN/SMTP value key the object holds or wants, in one
Lua call: either every key is taken or none is, so two exports can never hold half of each other's
keys and deadlock. Keys carry the tenant as a Redis Cluster hash tag, so one tenant's keys share a
slot and the script stays legal on a cluster.

A waiter does not poll: a failed acquisition leaves a waiter count beside the busy key, and the
release pushes one wake-up per waiter onto `<key>:wake`, which the waiter blocks on (BLPOP). It
retries the moment the key is given back, not at the end of a back-off step that may overshoot the
holder's transaction by several milliseconds, and burns no CPU meanwhile. A key that expires
instead of being released wakes nobody: the blocking wait is short and the waiter tries again.
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
    local holder = redis.call('get', key)
    if holder and holder ~= ARGV[1] then
        if ARGV[3] == '1' then
            redis.call('incr', key .. ':waiters')
            redis.call('pexpire', key .. ':waiters', ARGV[2])
        end
        return i
    end
end
for _, key in ipairs(KEYS) do
    redis.call('set', key, ARGV[1], 'PX', ARGV[2])
end
return 0
"""

# ARGV: token, ttl, then the size of each set; KEYS: the sets one after another. Returns 1 or 0 per set.
_ACQUIRE_EACH = """
local taken, first = {}, 1
for s = 3, #ARGV do
    local last = first + tonumber(ARGV[s]) - 1
    local free = true
    for i = first, last do
        local holder = redis.call('get', KEYS[i])
        if holder and holder ~= ARGV[1] then
            free = false
            break
        end
    end
    if free then
        for i = first, last do redis.call('set', KEYS[i], ARGV[1], 'PX', ARGV[2]) end
    end
    taken[#taken + 1] = free and 1 or 0
    first = last + 1
end
return taken
"""

_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('get', key) == ARGV[1] then
        redis.call('del', key)
        released = released + 1
        local waiters = tonumber(redis.call('get', key .. ':waiters') or '0')
        if waiters > 0 then
            redis.call('del', key .. ':waiters')
            for _ = 1, math.min(waiters, 64) do redis.call('rpush', key .. ':wake', 1) end
            redis.call('pexpire', key .. ':wake', 1000)
        end
    end
end
return released
"""


_WAKE_WAIT_S = 0.05  # the longest one blocking wait; a key that expires instead of being released wakes nobody


def new_token() -> str:
    """What marks a set of keys as one holder's."""
    return secrets.token_hex(16)


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
        self._acquire_each = redis.register_script(_ACQUIRE_EACH)
        self._release = redis.register_script(_RELEASE)

    def try_acquire(self, keys: list[str], *, will_wait: bool = False, token: str | None = None) -> str:
        """Take every key or none, in one round trip; return the token that releases them.

        `will_wait`: the caller blocks on the busy key's wake-up list next, so the release must wake it.
        `token`: add the keys to those already held with it (a key it holds already counts as free).
        """
        token = token or new_token()
        busy = int(self._acquire(keys=keys, args=[token, self.ttl_ms, "1" if will_wait else "0"]))
        if busy:
            raise LocksBusy(keys[busy - 1])
        return token

    def try_acquire_each(self, key_sets: list[list[str]], token: str) -> list[bool]:
        """For each set in turn, take all of its keys or none, in one round trip for every set.

        A batch locks each export's set this way: a key another holder has costs that export alone,
        and a key this token already holds (an earlier export of the batch wants it too) is free,
        since one transaction applies the batch's exports one after another.
        """
        if not key_sets:
            return []
        keys = [key for key_set in key_sets for key in key_set]
        sizes = [len(key_set) for key_set in key_sets]
        taken = self._acquire_each(keys=keys, args=[token, self.ttl_ms, *sizes])
        return [bool(t) for t in taken]

    def release(self, keys: list[str], token: str) -> int:
        """Give back the keys still ours; an expired key taken by another is left alone."""
        return int(self._release(keys=keys, args=[token]))

    def acquire_waiting(self, keys: list[str], wait_s: float) -> str:
        """Take every key or none, waiting up to `wait_s` for busy ones to be given back (LocksBusy after)."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                return self.try_acquire(keys, will_wait=True)
            except LocksBusy as busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                self._wait_for_release(busy.key, min(left, _WAKE_WAIT_S))

    @contextmanager
    def holding(self, keys: list[str], wait_s: float) -> Iterator[str]:
        """Hold `keys` for the block, waiting up to `wait_s` for busy ones to be given back."""
        token = self.acquire_waiting(keys, wait_s)
        try:
            yield token
        finally:
            self.release(keys, token)

    def _wait_for_release(self, key: str, timeout_s: float) -> None:
        """Block until `key`'s holder gives it back or `timeout_s` passes (a jitter spreads the retries)."""
        self.redis.blpop([f"{key}:wake"], timeout=timeout_s * random.uniform(0.5, 1.0))
