"""Every `apply_export` message is bound to one tenant (shared.messaging.send_export's `tenant`): the worker
refuses an export naming another and files it under the bound tenant; a retry keeps the binding; a
message of an older version, without one, is bound to the tenant it names."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery_batches import SimpleRequest
from redis import Redis

from shared.exports.post_ledger import outcomes, wait_for
from shared.exports.producer import producer_app
from shared.locks.manager import LockManager, object_lock_key
from shared.messaging import APPLY_EXPORT, EXPORTS_QUEUE, export_kwargs
from shared.settings import Settings, get_settings
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.services import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.workers.helpers import failures, object_view, send_raw
from workers.context import WorkerContext
from workers.exports import ExportWork

pytestmark = pytest.mark.integration

UNCONSUMED_BROKER = TEST_REDIS_URL.rsplit("/", 1)[0] + "/11"  # as in tests/shared/test_redelivery.py
ANCHOR_PREFIX = "tenant-binding-retry-"


def test_a_message_bound_to_one_tenant_that_names_another_is_filed_under_the_bound_one(
    workers: object, redis_client: Redis, make_tenant: Callable[..., Tenant]
) -> None:
    bound, named = make_tenant(), make_tenant()
    valid = json.loads(export_line(named.name, "x", displayName="X", userPrincipalName="x@contoso.com"))
    invalid = json.loads(export_line(named.name, "g", "Group", userPrincipalName="g@contoso.com"))
    counts = send_raw(redis_client, [valid, invalid, "not json"], tenant=bound.name)

    assert counts == {"failed": 3}
    assert object_view(named.name, "x") is None, "nothing is written into the tenant the message names"
    assert failures(named.name) == [], "nor into its failures"
    filed = {f.source_anchor: f for f in failures(bound.name)}
    assert set(filed) == {"x", "g", None} and {f.error_code for f in filed.values()} == {"DataValidationFailed"}
    assert f"is for tenant {named.name!r} but was posted for tenant {bound.name!r}" in filed["x"].message
    assert "only Users have one" in filed["g"].message, "an invalid one keeps its own reason"
    assert "not valid JSON" in filed[None].message


def test_a_message_naming_its_bound_tenant_applies(workers: object, redis_client: Redis, tenant: Tenant) -> None:
    message = json.loads(export_line(tenant.name, "ok", displayName="Ok", userPrincipalName="ok@contoso.com"))
    assert send_raw(redis_client, [message], tenant=tenant.name) == {"applied": 1}
    view = object_view(tenant.name, "ok")
    assert view is not None and view.upn == "ok@contoso.com"


def test_a_message_of_an_older_version_without_a_tenant_is_bound_to_the_tenant_it_names(
    workers: object, redis_client: Redis, tenant: Tenant
) -> None:
    app = producer_app(get_settings())
    batch = uuid.uuid4().hex
    message = json.loads(export_line(tenant.name, "old", displayName="Old", userPrincipalName="old@contoso.com"))
    app.send_task(APPLY_EXPORT, kwargs={"message": message, "batch": batch, "index": 1})  # as the last release sent it
    assert wait_for(redis_client, batch, 1, 60)
    assert outcomes(redis_client, batch) == {"applied": 1}
    assert object_view(tenant.name, "old") is not None


# --- a retry keeps the binding ------------------------------------------------------------------


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Redis]:
    """A broker nobody consumes, to read the retry a worker sends; only this test's messages are removed."""
    monkeypatch.setenv("CELERY_BROKER_URL", UNCONSUMED_BROKER)  # Celery lets the variable win over any argument
    client = Redis.from_url(UNCONSUMED_BROKER)
    yield client
    for raw in client.lrange(EXPORTS_QUEUE, 0, -1):
        if ANCHOR_PREFIX.encode() in base64.b64decode(json.loads(raw)["body"]):
            client.lrem(EXPORTS_QUEUE, 0, raw)


def queued(client: Redis, task_id: str) -> tuple[dict[str, Any], int]:
    """The kwargs and retry count of the message with `task_id` on the exports queue."""
    for raw in client.lrange(EXPORTS_QUEUE, 0, -1):
        envelope = json.loads(raw)
        if envelope["headers"]["id"] == task_id:
            return json.loads(base64.b64decode(envelope["body"]))[1], int(envelope["headers"]["retries"])
    raise AssertionError(f"no message {task_id} on the queue")


@pytest.mark.parametrize("sent_for", ["bound", "older version"])
def test_a_retry_is_sent_bound_to_the_same_tenant(
    sent_for: str, tenant: Tenant, redis_client: Redis, broker: Redis
) -> None:
    """The object's lock is held elsewhere: the worker code sends the export again, as `Task.retry` would."""
    settings = Settings(
        database_url=TEST_DATABASE_URL, redis_url=TEST_REDIS_URL, celery_broker_url=UNCONSUMED_BROKER, lock_wait_s=0
    )
    work = ExportWork(WorkerContext(producer_app(settings), settings))
    anchor = f"{ANCHOR_PREFIX}{uuid.uuid4().hex[:8]}"
    message = json.loads(export_line(tenant.name, anchor, displayName="Busy", userPrincipalName="busy@contoso.com"))
    kwargs = export_kwargs(message, tenant=tenant.name)
    if sent_for == "older version":
        del kwargs["tenant"]
    request = SimpleRequest(str(uuid.uuid4()), APPLY_EXPORT, (), kwargs, {}, "test", True, None, None, {"retries": 0})
    locks = LockManager(redis_client, ttl_ms=10_000)
    token = locks.try_acquire([object_lock_key(tenant.name, anchor)])
    try:
        assert work.apply_batch([request]) == [True], "handed over as a retry"
    finally:
        locks.release([object_lock_key(tenant.name, anchor)], token)

    retry, retries = queued(broker, request.id)
    assert (retry["tenant"], retries) == (tenant.name, 1)
    assert retry["message"] == message
