"""The producer client: validate export lines and enqueue one Celery message per export.

A line that cannot be an export is recorded as a failed export right away and reported back, so
nothing posted is lost silently and a bad line never stops the others.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from celery import Celery

from shared.db import transaction
from shared.failures import record_failure
from shared.schemas import ExportRejected, parse_export
from shared.settings import Settings
from shared.task_names import APPLY_EXPORT, EXPORTS_QUEUE


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


def producer_app(settings: Settings) -> Celery:
    """A Celery app that only sends; the workers' app lives in `workers.app`."""
    app = Celery("syncguard-producer", broker=settings.broker_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True)
    return app


def post_exports(lines: Iterable[str], settings: Settings, app: Celery | None = None) -> PostResult:
    """Enqueue every valid export line (blank lines are skipped); record the others as failures."""
    app = app or producer_app(settings)
    result = PostResult(batch=uuid.uuid4().hex)
    rejected: list[ExportRejected] = []
    try:
        with app.producer_or_acquire() as producer:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    export = parse_export(line, max_proxy_addresses=settings.max_proxy_addresses)
                except ExportRejected as exc:
                    rejected.append(exc)
                    result.rejected.append(RejectedLine(number, exc.code.value, exc.message))
                    continue
                app.send_task(
                    APPLY_EXPORT,
                    kwargs={"message": export.to_message(), "batch": result.batch, "index": number},
                    queue=EXPORTS_QUEUE,
                    producer=producer,
                )
                result.enqueued += 1
    finally:
        # Even when the broker fails half-way, the lines already judged invalid are kept.
        if rejected:
            with transaction() as session:
                for exc in rejected:
                    record_failure(session, exc)
    return result


def as_json(result: PostResult) -> str:
    return json.dumps(
        {
            "batch": result.batch,
            "enqueued": result.enqueued,
            "rejected": [{"line": r.line, "errorCode": r.code, "error": r.error} for r in result.rejected],
        }
    )
