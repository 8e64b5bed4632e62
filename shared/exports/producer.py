"""The producer client: validate export lines and enqueue one Celery message per export.

A line that cannot be an export is recorded as a failed export right away and reported back, so
nothing posted is lost silently and a bad line never stops the others. Memory does not grow with
the number of lines: valid exports go out in chunks, rejections are filed in bulk as the lines
stream (`shared.exports.failures.FailureFiling`), and the result counts every rejection but lists
only the first REJECTIONS_LISTED of each error code. Redis memory does not grow with them either: a
post holds while POST_MAX_OUTSTANDING of its exports wait for the workers (each costs ~6 KB of Redis,
queued and filed), so a million-line initial load never parks gigabytes in the broker.

Redis has no publisher confirms, so "enqueued" means the broker answered the chunk's pipeline: a
chunk of LEDGER_CHUNK messages goes out in one round trip (kombu's `Producer.batch`), a third of the
time one LPUSH each took. A broker lost mid-chunk may have written part of it unreported. Every message
is first filed in the batch's pending ledger (`shared.exports.post_ledger`), so one the broker loses later is
sent again (`shared.exports.redelivery`). When the broker fails part-way, `PostInterrupted` says how many
exports were enqueued before; posting the same lines again is harmless (sequence, idempotency).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as BrokerUnreachable
from redis import Redis
from redis.exceptions import RedisError

from shared.core.export import ExportRejected, parse_export
from shared.exports.failures import FailureFiling, FailureRecord
from shared.exports.post_ledger import done_count, forget_posted, record_posted
from shared.exports.tenant_binding import other_tenant
from shared.messaging import TASK_ROUTES, send_export
from shared.settings import Settings

log = logging.getLogger(__name__)

LEDGER_CHUNK = 200
ROOM_POLL_S = 0.1  # how often a held post looks again (POST_MAX_OUTSTANDING)
LEDGER_CHUNK_BYTES = 4 * 1024 * 1024  # a chunk of large exports goes out before it has 200
REJECTIONS_LISTED = 1000  # per error code: the rest are counted, and filed as failed exports all the same
# Bounded: a broker that is down fails the post within seconds instead of hanging it.
PUBLISH_RETRY_POLICY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1.0}
BROKER_SOCKET_OPTIONS = {"socket_timeout": 10, "socket_connect_timeout": 5}


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: int
    code: str
    error: str
    source_anchor: str | None = None  # the object it was filed under, when it names one


@dataclass(slots=True)
class PostResult:
    """What a post did. `rejected` lists the first REJECTIONS_LISTED rejections of each error code, in
    line order; `rejected_count` and `rejected_by_code` count all of them."""

    batch: str
    enqueued: int = 0
    rejected: list[RejectedLine] = field(default_factory=list)
    rejected_count: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)

    def reject(self, line: int, rejection: ExportRejected) -> None:
        code = rejection.code.value
        seen = self.rejected_by_code.get(code, 0)
        self.rejected_by_code[code] = seen + 1
        self.rejected_count += 1
        if seen < REJECTIONS_LISTED:
            self.rejected.append(RejectedLine(line, code, rejection.message, rejection.source_anchor))

    @property
    def rejections_left_out(self) -> int:
        return self.rejected_count - len(self.rejected)


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


def post_exports(
    lines: Iterable[str], settings: Settings, app: Celery | None = None, *, tenant: str | None = None
) -> PostResult:
    """Enqueue every valid export line (blank lines are skipped); record the others as failures.

    With `tenant`, the post is bound to that tenant (a token's, or a failed export's of that tenant):
    an export for another tenant is rejected, every rejection is filed under `tenant`, and every
    message is sent bound to it (`send_export`), so the worker holds it to the same rule.
    """
    app = app or producer_app(settings)
    ledger = Redis.from_url(settings.redis_url)
    result = PostResult(batch=uuid.uuid4().hex)
    filing = FailureFiling(settings.database_url)
    chunk: list[tuple[int, dict[str, Any]]] = []
    chunk_bytes = 0
    number = 0
    try:
        with app.producer_or_acquire() as producer:
            for number, line in enumerate(lines, start=1):
                if len(chunk) >= LEDGER_CHUNK or chunk_bytes >= LEDGER_CHUNK_BYTES:
                    _wait_for_room(ledger, result, settings.post_max_outstanding)
                    _send(app, producer, ledger, result, chunk, tenant)
                    chunk, chunk_bytes = [], 0
                if not line.strip():
                    continue
                try:
                    export = parse_export(line, max_proxy_addresses=settings.max_proxy_addresses)
                    if tenant is not None and export.tenant != tenant:
                        raise other_tenant(export, tenant, line)
                except ExportRejected as exc:
                    if tenant is not None:
                        exc.tenant = tenant
                    # Plain data only: the exception, its traceback and frames go at the end of this block.
                    filing.add(FailureRecord.of(exc))
                    result.reject(number, exc)
                    continue
                chunk.append((number, export.to_message()))
                chunk_bytes += len(line)
            _send(app, producer, ledger, result, chunk, tenant)
    except PostInterrupted:
        raise
    except (BrokerUnreachable, RedisError, OSError) as exc:  # connecting to the broker failed
        raise PostInterrupted(result, chunk[0][0] if chunk else max(number, 1), exc) from exc
    finally:
        # Even when the broker fails half-way, the lines already judged invalid are kept.
        filing.flush()
    return result


def _wait_for_room(ledger: Redis, result: PostResult, limit: int) -> None:
    """Hold the post while `limit` of its exports are enqueued and not yet done (0: never hold).

    Counted from the post's own ledger, so it is this post's share of the broker whatever else is
    queued; the workers' pace sets the producer's, and a post waits, rather than fails, while they
    are away."""
    if not limit:
        return
    waited = False
    while result.enqueued - done_count(ledger, result.batch) >= limit:
        if not waited:
            log.info("%d exports of this post wait for the workers: holding until fewer do", limit)
            waited = True
        time.sleep(ROOM_POLL_S)


def _send(
    app: Celery,
    producer: Any,
    ledger: Redis,
    result: PostResult,
    chunk: list[tuple[int, dict[str, Any]]],
    tenant: str | None,
) -> None:
    """File the chunk in the pending ledger, then enqueue it, each message bound to the post's tenant
    (or, for a post that may write any, to the tenant it names); on a failure, unfile what was not sent."""
    if not chunk:
        return
    try:
        record_posted(ledger, result.batch, chunk)
    except Exception as exc:
        raise PostInterrupted(result, chunk[0][0], exc) from exc
    try:  # one round trip: the publish retry policy is kombu's per message, so a lost chunk is reported
        with producer.batch(max_size=2 * len(chunk)):  # one LPUSH (and at most one PEXPIRE) a message
            for number, message in chunk:
                send_export(
                    app,
                    message,
                    tenant=tenant or message["tenant"],
                    batch=result.batch,
                    index=number,
                    producer=producer,
                )
    except Exception as exc:
        try:
            forget_posted(ledger, result.batch, (n for n, _ in chunk))
        except Exception as forgetting:  # then the redelivery sends them later: harmless
            log.warning("could not unfile the exports that were not sent: %s", forgetting)
        raise PostInterrupted(result, chunk[0][0], exc) from exc
    result.enqueued += len(chunk)


def as_json(result: PostResult) -> str:
    """docs/design.md §3.3: `rejected` lists the first rejections of each code, the counts give all."""
    return json.dumps(
        {
            "batch": result.batch,
            "enqueued": result.enqueued,
            "rejected": [{"line": r.line, "errorCode": r.code, "error": r.error} for r in result.rejected],
            "rejectedCount": result.rejected_count,
            "rejectedByCode": result.rejected_by_code,
        }
    )
