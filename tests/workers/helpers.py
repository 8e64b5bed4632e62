"""Posting through the real broker and reading back what the workers committed."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from redis import Redis
from sqlalchemy import select

from shared.exports.post_ledger import outcomes, wait_for
from shared.exports.producer import PostResult, post_exports, producer_app
from shared.messaging import send_export
from shared.settings import get_settings
from shared.store.engine import transaction
from shared.store.tables import ClaimedValue, DirectoryObject, FailedExport, ProvisioningError, Tenant
from tests.services import queue_lengths


def post_and_wait(redis: Redis, lines: list[str], timeout_s: float = 120) -> dict[str, int]:
    """Post like `syncguard post --wait` and return the outcome counts."""
    result: PostResult = post_exports(lines, get_settings())
    assert wait_for(redis, result.batch, result.enqueued, timeout_s), "workers did not finish in time"
    return outcomes(redis, result.batch)


def send_raw(redis: Redis, messages: list[Any], timeout_s: float = 60, *, tenant: str | None = None) -> dict[str, int]:
    """Put messages on the queue exactly as given, bypassing the producer's own validation; bound to
    `tenant`, or (None) each to the tenant it names."""
    app = producer_app(get_settings())
    batch = uuid.uuid4().hex
    with app.producer_or_acquire() as producer:
        for index, message in enumerate(messages):
            send_export(app, message, tenant=tenant, batch=batch, index=index, producer=producer)
    assert wait_for(redis, batch, len(messages), timeout_s), "workers did not finish in time"
    return outcomes(redis, batch)


def wait_until_idle(redis: Redis, timeout_s: float = 60) -> None:
    """Queues empty and nothing unacknowledged: follow-up releases included."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(queue_lengths(redis).values()) and not redis.hlen("unacked"):
            time.sleep(0.2)
            if not any(queue_lengths(redis).values()) and not redis.hlen("unacked"):
                return
        time.sleep(0.05)
    raise AssertionError(f"queues not idle: {queue_lengths(redis)}, unacked={redis.hlen('unacked')}")


@dataclass(frozen=True)
class ObjectView:
    object_id: str
    object_class: str
    upn: str | None
    proxy_addresses: list[str]
    entries: list[dict[str, Any]]
    held: set[str]
    last_sequence: int
    deleted: bool
    display_name: str | None


def object_view(tenant: str, anchor: str) -> ObjectView | None:
    with transaction() as session:
        obj = session.scalars(
            select(DirectoryObject).join(Tenant).where(Tenant.name == tenant, DirectoryObject.source_anchor == anchor)
        ).first()
        if obj is None:
            return None
        entries = [
            {
                "propertyName": e.property_name,
                "propertyValue": e.property_value,
                "conflictingObjectId": e.conflicting_object_id,
                "key": e.key,
            }
            for e in session.scalars(select(ProvisioningError).where(ProvisioningError.object_pk == obj.id))
        ]
        held = set(session.scalars(select(ClaimedValue.key).where(ClaimedValue.object_pk == obj.id)))
        return ObjectView(
            obj.object_id,
            obj.object_class,
            obj.upn,
            list(obj.proxy_addresses),
            entries,
            held,
            obj.last_sequence,
            obj.deleted,
            obj.display_name,
        )


def failures(tenant: str | None) -> list[FailedExport]:
    with transaction() as session:
        query = (
            select(FailedExport).where(FailedExport.tenant == tenant)
            if tenant
            else select(FailedExport).where(FailedExport.tenant.is_(None))
        )
        return list(session.scalars(query.order_by(FailedExport.id)))
