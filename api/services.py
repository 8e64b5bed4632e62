"""What every request may need beyond the database: the broker to enqueue on and Redis to look at.

Built once when the service starts and kept on `app.state`, so requests share connection pools.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from fastapi import Request
from redis import Redis

from shared.exports.producer import producer_app
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    producer: Celery
    redis: Redis
    broker_redis: Redis | None  # the broker's Redis, for queue depth; None for a broker that is not Redis

    @classmethod
    def start(cls, settings: Settings) -> Services:
        broker = settings.broker_url
        broker_redis = (
            Redis.from_url(broker, socket_timeout=5) if broker.startswith(("redis://", "rediss://")) else None
        )
        return cls(
            settings=settings,
            producer=producer_app(settings),
            redis=Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5),
            broker_redis=broker_redis,
        )

    def close(self) -> None:
        self.redis.close()
        if self.broker_redis is not None:
            self.broker_redis.close()
        self.producer.close()


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
