"""Read `maxmemory-policy` from each Redis a process relies on, and refuse to start on one that evicts.

Workers and beat call `require_noeviction` from Celery's start signals (workers/app.py), the API from
its lifespan (api/app.py). It reads the broker (CELERY_BROKER_URL) and the locks' Redis (REDIS_URL),
once when both name one server. A policy that cannot be read is a warning, and the process starts: a
managed Redis may rename or deny CONFIG (its console shows the policy instead), and a Redis that does
not answer yet is one the worker waits for anyway, as it always has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from kombu.utils.url import maybe_sanitize_url
from redis import Redis
from redis.exceptions import RedisError, ResponseError

from shared.preflight import eviction
from shared.settings import Settings

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
_REDIS_PY_SCHEMES = ("redis", "rediss", "unix")  # what redis-py connects to from a URL


class EvictingRedis(RuntimeError):
    """A Redis this process relies on may evict keys; the message names the server, the policy and the fix."""


@dataclass(frozen=True, slots=True)
class RedisServer:
    url: str
    role: str  # which setting names it, and what syncguard keeps there

    def __str__(self) -> str:
        return f"Redis at {maybe_sanitize_url(self.url, mask='***')} ({self.role})"


def _address(url: str) -> tuple[object, ...]:
    """The server a URL names, whatever its database number or credentials."""
    kwargs = Redis.from_url(url).connection_pool.connection_kwargs
    return kwargs.get("host"), kwargs.get("port"), kwargs.get("path")


def servers_of(settings: Settings) -> list[RedisServer]:
    """The Redis servers to read: the locks' always, the broker's when it is a Redis of another address."""
    locks = RedisServer(settings.redis_url, "REDIS_URL: value locks, post ledger, beat's schedule")
    broker = settings.broker_url
    if urlsplit(broker).scheme not in _REDIS_PY_SCHEMES:
        return [locks]
    if _address(broker) == _address(settings.redis_url):
        return [RedisServer(settings.redis_url, "REDIS_URL and CELERY_BROKER_URL: the broker, locks, post ledger")]
    return [RedisServer(broker, "CELERY_BROKER_URL: the broker's queues"), locks]


def read_policy(server: RedisServer) -> str | None:
    """The server's `maxmemory-policy`; None when CONFIG GET answers without it."""
    client = Redis.from_url(server.url, socket_connect_timeout=READ_TIMEOUT_S, socket_timeout=READ_TIMEOUT_S)
    try:
        found = client.config_get(eviction.SETTING)
    finally:
        client.close()
    value = found.get(eviction.SETTING)
    return value.decode() if isinstance(value, bytes) else value


def _why_unreadable(exc: RedisError) -> str:
    lines = str(exc).strip().splitlines()
    said = lines[0] if lines else type(exc).__name__
    if isinstance(exc, ResponseError):
        return f"CONFIG GET was refused: {said}"
    return f"it did not answer: {said}"


def require_noeviction(settings: Settings) -> None:
    """Raise `EvictingRedis` when a server's policy can evict keys; log a warning where it cannot be read."""
    scheme = urlsplit(settings.broker_url).scheme
    if scheme not in _REDIS_PY_SCHEMES and ("redis" in scheme or "sentinel" in scheme):
        broker = f"the broker at {maybe_sanitize_url(settings.broker_url, mask='***')}"
        log.warning(eviction.unreadable_warning(broker, f"a {scheme}:// URL is not read here"))
    refusals = []
    for server in servers_of(settings):
        try:
            policy = read_policy(server)
            reason = "CONFIG GET returned no value"
        except RedisError as exc:
            policy, reason = None, _why_unreadable(exc)
        found = eviction.verdict(policy)
        if found is eviction.Verdict.CAN_EVICT and policy is not None:
            refusals.append(eviction.refusal(str(server), policy))
        elif found is eviction.Verdict.UNREADABLE:
            log.warning(eviction.unreadable_warning(str(server), reason))
        else:
            log.info("%s has %s %s", server, eviction.SETTING, policy)
    if refusals:
        raise EvictingRedis("; and ".join(refusals))
