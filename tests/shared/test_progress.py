"""Batch progress and the pending ledger (shared.exports.post_ledger), and the delivery counter (shared.exports.crash_counter)."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from shared.exports import post_ledger as progress
from shared.exports.crash_counter import DeliveryId, begin_batch, begin_delivery, end_deliveries, end_delivery


@pytest.fixture
def batch() -> str:
    return uuid.uuid4().hex


def test_a_posted_export_is_pending_until_its_delivery_ends(redis_client: Redis, batch: str) -> None:
    progress.record_posted(redis_client, batch, [(1, {"sourceAnchor": "a"}), (2, {"sourceAnchor": "b"})])
    progress.mark_done(redis_client, batch, 1, "applied")
    assert [(p.index, p.message) for p in progress.pending(redis_client, batch)] == [(2, {"sourceAnchor": "b"})]
    assert progress.done_count(redis_client, batch) == 1
    assert batch in progress.batches_posted_before(redis_client, float("inf"))
    assert not progress.forget_batch_if_settled(redis_client, batch)
    progress.mark_done(redis_client, batch, 2, "skipped")
    assert progress.forget_batch_if_settled(redis_client, batch)
    assert batch not in progress.batches_posted_before(redis_client, float("inf"))


def test_the_first_completion_decides_the_outcome_and_a_second_application_is_flagged(
    redis_client: Redis, batch: str
) -> None:
    progress.mark_done(redis_client, batch, 1, "applied")
    progress.mark_done(redis_client, batch, 1, "skipped")  # a redelivered copy after the apply
    progress.mark_done(redis_client, batch, 2, "failed")
    progress.mark_done(redis_client, batch, 2, "applied")  # a dead letter applied after all
    assert progress.outcomes(redis_client, batch) == {"applied": 2}
    progress.mark_done(redis_client, batch, 1, "applied")  # what the sequence check makes impossible
    assert progress.outcomes(redis_client, batch) == {"applied": 2, progress.APPLIED_AGAIN: 1}
    assert progress.done_count(redis_client, batch) == 2


def test_a_delivery_that_never_ended_counts_towards_the_next(redis_client: Redis, batch: str) -> None:
    task = uuid.uuid4().hex
    assert begin_delivery(redis_client, task, 0, batch, 7) == 1
    assert begin_delivery(redis_client, task, 0, batch, 7) == 2  # the first one's worker died
    end_delivery(redis_client, task, 0, batch, 7, None)  # handed over to a retry: not a crash
    assert begin_delivery(redis_client, task, 1, batch, 7) == 1
    end_delivery(redis_client, task, 1, batch, 7, "applied")
    assert begin_delivery(redis_client, task, 0, batch, 7) == 1
    assert progress.outcomes(redis_client, batch) == {"applied": 1}
    assert progress.pending(redis_client, batch) == [], "nothing was posted in this batch, so nothing is pending"


def test_a_batch_counts_first_deliveries_and_leaves_a_dead_deliverys_messages_to_be_counted_alone(
    redis_client: Redis, batch: str
) -> None:
    fresh, survivor = DeliveryId(uuid.uuid4().hex, 0, batch, 1), DeliveryId(uuid.uuid4().hex, 0, batch, 2)
    assert begin_batch(redis_client, [fresh, survivor]) == [1, 1]
    # the batch's worker died: both come back; each says it would be delivery 2, and is not counted yet
    assert begin_batch(redis_client, [fresh, survivor]) == [2, 2]
    assert begin_batch(redis_client, [survivor]) == [2], "asking again does not count"
    assert begin_delivery(redis_client, survivor.task_id, 0, batch, 2) == 2, "applied alone: now it counts"
    end_deliveries(redis_client, [(fresh, "applied"), (survivor, "applied")])
    assert begin_batch(redis_client, [fresh]) == [1], "a finished delivery leaves no count behind"
    assert progress.outcomes(redis_client, batch) == {"applied": 2}
    assert set(redis_client.hkeys(progress._started_key(batch))) == {b"1", b"2"}, "both marked started"
