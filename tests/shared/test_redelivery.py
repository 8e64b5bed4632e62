"""When a pending export counts as stranded, and what redelivery sends (shared.exports.redelivery)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from redis import Redis

from shared.exports import post_ledger as progress
from shared.exports.producer import producer_app
from shared.exports.redelivery import redeliver_stranded
from shared.messaging import EXPORTS_QUEUE
from shared.settings import Settings
from tests.services import TEST_REDIS_URL

BROKER_URL = TEST_REDIS_URL.rsplit("/", 1)[0] + "/11"  # nothing consumes it
LEDGER_URL = TEST_REDIS_URL.rsplit("/", 1)[0] + "/10"  # no other batches in it
SETTINGS = Settings(celery_broker_url=BROKER_URL, broker_visibility_timeout_s=60, redelivery_interval_s=10)


@pytest.fixture
def ledger() -> Iterator[Redis]:
    client = Redis.from_url(LEDGER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Celery, Redis]]:
    monkeypatch.setenv("CELERY_BROKER_URL", BROKER_URL)  # Celery lets the variable win over any argument
    client = Redis.from_url(BROKER_URL)
    client.flushdb()
    yield producer_app(SETTINGS), client
    client.flushdb()


def queued_exports(client: Redis) -> list[tuple[str, int]]:
    """(batch, index) of every message on the exports queue."""
    return sorted((kwargs["batch"], kwargs["index"]) for kwargs in queued_kwargs(client))


def queued_kwargs(client: Redis) -> list[dict[str, Any]]:
    """The keyword arguments of every message on the exports queue."""
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[1] for raw in client.lrange(EXPORTS_QUEUE, 0, -1)]


def test_only_exports_long_pending_and_not_recently_started_are_sent_again(
    ledger: Redis, broker: tuple[Celery, Redis]
) -> None:
    app, client = broker
    batch = uuid.uuid4().hex
    progress.record_posted(ledger, batch, [(i, {"tenant": "contoso", "sourceAnchor": f"o{i}"}) for i in (1, 2, 3)])
    progress.mark_done(ledger, batch, 1, "applied")
    with ledger.pipeline() as pipe:
        progress.mark_started(pipe, batch, 2)  # a worker is on it right now
        pipe.execute()

    now = time.time()
    assert redeliver_stranded(ledger, app, SETTINGS, now=now).resent == 0, "posted too recently to be lost"
    progress.touch_batch(ledger, batch, now - SETTINGS.stranded_after_s - 5)  # posted long ago
    result = redeliver_stranded(ledger, app, SETTINGS, now=now)
    assert (result.resent, result.batches) == (1, 1)
    assert queued_exports(client) == [(batch, 3)], "not the done one, not the one a worker started just now"


def test_nothing_is_sent_again_while_the_queue_has_work_or_twice_within_a_period(
    ledger: Redis, broker: tuple[Celery, Redis]
) -> None:
    app, client = broker
    batch = uuid.uuid4().hex
    progress.record_posted(ledger, batch, [(1, {"tenant": "contoso", "sourceAnchor": "o1"})])
    later = time.time() + SETTINGS.stranded_after_s + 1
    client.lpush(EXPORTS_QUEUE, b"{}")
    assert redeliver_stranded(ledger, app, SETTINGS, now=later).queue_busy
    client.delete(EXPORTS_QUEUE)

    assert redeliver_stranded(ledger, app, SETTINGS, now=later).resent == 1
    client.delete(EXPORTS_QUEUE)
    assert redeliver_stranded(ledger, app, SETTINGS, now=later + 1).resent == 0, "the re-send restarts the clock"
    progress.mark_done(ledger, batch, 1, "applied")
    redeliver_stranded(ledger, app, SETTINGS, now=later + SETTINGS.stranded_after_s + 2)
    assert batch not in progress.batches_posted_before(ledger, float("inf")), "a settled batch is dropped"


def test_a_re_sent_export_is_bound_to_the_tenant_it_names(ledger: Redis, broker: tuple[Celery, Redis]) -> None:
    """The ledger holds only exports the producer checked against the post's tenant: that is the binding."""
    app, client = broker
    batch = uuid.uuid4().hex
    posted = [(1, {"tenant": "contoso", "sourceAnchor": "o1"}), (2, {"tenant": "fabrikam", "sourceAnchor": "o2"})]
    progress.record_posted(ledger, batch, posted)
    assert redeliver_stranded(ledger, app, SETTINGS, now=time.time() + SETTINGS.stranded_after_s + 1).resent == 2
    assert sorted((k["index"], k["tenant"], k["message"]["tenant"]) for k in queued_kwargs(client)) == [
        (1, "contoso", "contoso"),
        (2, "fabrikam", "fabrikam"),
    ]
