"""The producer client: validate export lines and enqueue one Celery message per export.

A line that cannot be an export is recorded as a failed export right away and reported back, so
nothing posted is lost silently and a bad line never stops the others.

Redis has no publisher confirms, so "enqueued" means the broker answered the LPUSH. Every message
is first filed in the batch's pending ledger (`shared.exports.post_ledger`), so one the broker loses later is
sent again (`shared.exports.redelivery`). When the broker fails part-way, `PostInterrupted` says how many
exports were enqueued before; posting the same lines again is harmless (sequence, idempotency).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis import Redis
from redis.exceptions import RedisError

from shared.core.export import ErrorCode, Export, ExportRejected, parse_export
from shared.exports.failures import record_failure
from shared.exports.post_ledger import forget_posted, record_posted
from shared.messaging import TASK_ROUTES, send_export
from shared.settings import Settings
from shared.store.engine import transaction

log = logging.getLogger(__name__)

LEDGER_CHUNK = 200
# Bounded: a broker that is down fails the post within seconds instead of hanging it.
PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}
BROKER_SOCKET_OPTIONS = {"socket_timeout": 10, "socket_connect_timeout": 5}


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    code: str
    error: str


@dataclass(slots=True)
class PostResult:
    batch: str
    enqueued: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)


class PostInterrupted(BrokerUnreachable):
    """The broker (or the pending ledger) failed part-way; `result` holds what was enqueued before."""

    def __init__(self, result: PostResult, line: int, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.result = result
        self.line = line
        self.cause = cause


def producer_app(settings: Settings) -> Celery:
    """A Celery app that only sends; the workers' app lives in `workers.app`."""
    app = Celery("syncguard-producer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        task_publish_retry=True,
        task_publish_retry_policy=PUBLISH_RETRY_POLICY,
        task_routes=TASK_ROUTES,
        broker_transport_options=BROKER_SOCKET_OPTIONS,
    )
    return app


def _bind_to_tenant(line: str, export: Export, tenant: str) -> None:
    """A producer authorised for one tenant can neither post for another nor file failures there."""
    if export.tenant != tenant:
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED,
            f"the export is for tenant {export.tenant!r} but was posted for tenant {tenant!r}",
            tenant=tenant,
            source_anchor=export.source_anchor,
            object_class=export.object_class.value,
            raw=line,
        )


def post_exports(
    lines: Iterable[str], settings: Settings, app: Celery | None = None, *, tenant: str | None = None
) -> PostResult:
    """Enqueue every valid export line (blank lines are skipped); record the others as failures.

    With `tenant`, every export must be for that tenant and every rejection is filed under it.
    """
    app = app or producer_app(settings)
    ledger = Redis.from_url(settings.redis_url)
    result = PostResult(batch=uuid.uuid4().hex)
    rejected: list[ExportRejected] = []
    chunk: list[tuple[int, dict[str, Any]]] = []
    number = 0
    try:
        with app.producer_or_acquire() as producer:
            for number, line in enumerate(lines, start=1):
                if len(chunk) >= LEDGER_CHUNK:
                    _send(app, producer, ledger, result, chunk)
                    chunk = []
                if not line.strip():
                    continue
                try:
                    export = parse_export(line, max_proxy_addresses=settings.max_proxy_addresses)
                    if tenant is not None:
                        _bind_to_tenant(line, export, tenant)
                except ExportRejected as exc:
                    if tenant is not None:
                        exc.tenant = tenant
                    rejected.append(exc)
                    result.rejected.append(RejectedLine(number, exc.code.value, exc.message))
                    continue
                chunk.append((number, export.to_message()))
            _send(app, producer, ledger, result, chunk)
    except PostInterrupted:
        raise
    except (BrokerUnreachable, RedisError, OSError) as exc:  # connecting to the broker failed
        raise PostInterrupted(result, chunk[0][0] if chunk else max(number, 1), exc) from exc
    finally:
        # Even when the broker fails half-way, the lines already judged invalid are kept.
        if rejected:
            with transaction(settings.database_url) as session:
                for rejection in rejected:
                    record_failure(session, rejection)
    return result


def _send(
    app: Celery, producer: Any, ledger: Redis, result: PostResult, chunk: list[tuple[int, dict[str, Any]]]
) -> None:
    """File the chunk in the pending ledger, then enqueue it; on a failure, unfile what was not sent."""
    if not chunk:
        return
    try:
        record_posted(ledger, result.batch, chunk)
    except Exception as exc:
        raise PostInterrupted(result, chunk[0][0], exc) from exc
    for position, (number, message) in enumerate(chunk):
        try:
            send_export(app, message, batch=result.batch, index=number, producer=producer)
        except Exception as exc:
            try:
                forget_posted(ledger, result.batch, (n for n, _ in chunk[position:]))
            except Exception as forgetting:  # then the redelivery sends them later: harmless
                log.warning("could not unfile the exports that were not sent: %s", forgetting)
            raise PostInterrupted(result, number, exc) from exc
        result.enqueued += 1


def as_json(result: PostResult) -> str:
    return json.dumps(
        {
            "batch": result.batch,
            "enqueued": result.enqueued,
            "rejected": [{"line": r.line, "errorCode": r.code, "error": r.error} for r in result.rejected],
        }
    )
