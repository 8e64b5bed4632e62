"""Every SCIM write is an export (§2) on the same queue, and its answer waits for the workers.

Per object, under a Redis lock held from reading its state to its export being applied, the face
assigns the next sequence (a Redis counter that never falls below the stored last sequence, so a
lost counter or an object first written by `syncguard post` still goes forward), posts the export
through the producer bound to the token's tenant (`post_exports(..., tenant=...)`), and waits on
the post's batch (`post_ledger.wait_for`) for at most SCIM_WRITE_WAIT_S. Two writes of one object
therefore apply in the order they took the lock, and a PATCH is applied to the state the previous
write left. Nothing is written to the directory tables here: the workers apply, as for any export.
When the wait runs out the exports are still queued and will apply; the client gets 503 with
Retry-After (SCIM has no 202) and a detail saying so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kombu.exceptions import OperationalError as BrokerUnreachable
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import select

from api.scim.errors import ScimError
from api.services import Services
from shared.core.export import ErrorCode
from shared.exports.post_ledger import wait_for
from shared.exports.producer import post_exports
from shared.locks.manager import LockManager, LocksBusy
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, FailedExport, Tenant

log = logging.getLogger(__name__)

LOCK_SLACK_S = 15  # a lock outlives the wait by this much, so a crashed API process frees it soon after
# KEYS: each write's sequence counter; ARGV: each one's stored last sequence, the floor it never falls below.
_NEXT_SEQUENCES = """
local values = {}
for i, key in ipairs(KEYS) do
    local value = redis.call('incr', key)
    local floor = tonumber(ARGV[i])
    if value <= floor then
        value = floor + 1
        redis.call('set', key, value)
    end
    redis.call('expire', key, 2592000)
    values[i] = value
end
return values
"""


@dataclass(frozen=True, slots=True)
class Write:
    """One object's next desired state (or its deletion) as an export will carry it."""

    source_anchor: str
    object_class: str
    operation: Literal["add", "update", "delete"]
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one write: applied (`object_id` of the stored object) or failed with a code."""

    applied: bool
    error_code: str | None = None
    message: str | None = None

    def refusal(self) -> ScimError:
        """The SCIM error of a failed write: 409 `uniqueness` for legacy mode, else 400."""
        message = self.message or "the export failed"
        if self.error_code == ErrorCode.ATTRIBUTE_VALUE_MUST_BE_UNIQUE.value:
            return ScimError(409, message, "uniqueness")
        if self.error_code == ErrorCode.LARGE_OBJECT.value:
            return ScimError(400, message, "tooMany")
        return ScimError(400, message, "invalidValue")


def _lock_name(tenant: str, anchor: str) -> str:
    return f"sg:scim:{{{tenant}}}:object:{anchor}"


@contextmanager
def object_locks(services: Services, tenant: Tenant, anchors: list[str]) -> Iterator[None]:
    """The objects' write locks, all or none in one round trip (waiting up to SCIM_WRITE_WAIT_S for a
    busy one), held until the block ends. One redis-py lock an object cost a /Bulk request of 1,000
    creations 2,000 round trips, one after another, while the workers had nothing to apply."""
    wait = services.settings.scim_write_wait_s
    locks = LockManager(services.redis, ttl_ms=int((wait + LOCK_SLACK_S) * 1000))
    names = {_lock_name(tenant.name, anchor): anchor for anchor in anchors}
    keys = sorted(names)
    try:
        token = locks.acquire_waiting(keys, wait)
    except LocksBusy as busy:
        raise ScimError(
            503,
            f"another write of the object {names[busy.key]!r} has been in progress for {wait:g} s; try again",
            headers={"Retry-After": "5"},
        ) from None
    try:
        yield
    finally:
        try:
            locks.release(keys, token)
        except RedisError as exc:  # they expire after the lock's TTL on their own
            log.warning("could not give back %d SCIM object lock(s): %s", len(keys), exc)


def _next_sequences(redis: Redis, tenant: str, writes: list[Write], stored: dict[str, int]) -> list[int]:
    """Each write's sequence, in one round trip for all of them (a write of an object already in the
    list goes after it)."""
    if not writes:
        return []
    keys = [f"sg:scim:{{{tenant}}}:sequence:{w.source_anchor}" for w in writes]
    floors = [stored.get(w.source_anchor, 0) for w in writes]
    return [int(value) for value in redis.eval(_NEXT_SEQUENCES, len(keys), *keys, *floors)]


def _stored_sequences(database_url: str, tenant: Tenant, anchors: list[str]) -> dict[str, int]:
    with transaction(database_url) as session:
        rows = session.execute(
            select(DirectoryObject.source_anchor, DirectoryObject.last_sequence).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor.in_(anchors)
            )
        )
        return {anchor: int(sequence) for anchor, sequence in rows}


def apply_writes(services: Services, tenant: Tenant, writes: list[Write]) -> list[Outcome]:
    """Post the writes as one batch and wait until each is applied or failed (call under the locks)."""
    if not writes:
        return []
    settings = services.settings
    anchors = [w.source_anchor for w in writes]
    stored = _stored_sequences(settings.database_url, tenant, anchors)
    sequences = _next_sequences(services.redis, tenant.name, writes, stored)
    lines: list[str] = []
    for write, sequence in zip(writes, sequences, strict=True):
        message: dict[str, Any] = {
            "tenant": tenant.name,
            "sourceAnchor": write.source_anchor,
            "objectClass": write.object_class,
            "operation": write.operation,
            "sequence": sequence,
        }
        if write.attributes is not None:
            message["attributes"] = write.attributes
        lines.append(json.dumps(message, ensure_ascii=False))
    started = datetime.now(UTC)
    try:
        result = post_exports(lines, settings, services.producer, tenant=tenant.name)
    except BrokerUnreachable as exc:
        raise ScimError(
            503, f"the broker could not be reached ({exc}); send the request again", headers={"Retry-After": "5"}
        ) from None
    rejected = {r.line: r for r in result.rejected}
    if result.enqueued and not wait_for(services.redis, result.batch, result.enqueued, settings.scim_write_wait_s):
        raise ScimError(
            503,
            f"the write is queued (batch {result.batch}) and will be applied, but it was not applied within "
            f"{settings.scim_write_wait_s:g} s (SCIM_WRITE_WAIT_S); read the resource again shortly",
            headers={"Retry-After": "5"},
        )
    return _outcomes(settings.database_url, tenant, writes, sequences, rejected, started)


def _outcomes(
    database_url: str,
    tenant: Tenant,
    writes: list[Write],
    sequences: list[int],
    rejected: dict[int, Any],
    started: datetime,
) -> list[Outcome]:
    anchors = [w.source_anchor for w in writes]
    with transaction(database_url) as session:
        applied = {
            anchor: int(sequence)
            for anchor, sequence in session.execute(
                select(DirectoryObject.source_anchor, DirectoryObject.last_sequence).where(
                    DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor.in_(anchors)
                )
            )
        }
        failed = {
            f.source_anchor: f
            for f in session.scalars(
                select(FailedExport)
                .where(
                    FailedExport.tenant == tenant.name,
                    FailedExport.source_anchor.in_(anchors),
                    FailedExport.last_failed >= started,
                )
                .order_by(FailedExport.last_failed)
            )
        }
    outcomes = []
    for number, (write, sequence) in enumerate(zip(writes, sequences, strict=True), start=1):
        if number in rejected:
            outcomes.append(Outcome(False, rejected[number].code, rejected[number].error))
        elif applied.get(write.source_anchor, -1) >= sequence:
            outcomes.append(Outcome(True))
        elif write.source_anchor in failed:
            failure = failed[write.source_anchor]
            outcomes.append(Outcome(False, failure.error_code, failure.message))
        else:  # done but neither applied nor filed: a later write of the object overtook it
            outcomes.append(Outcome(True))
    return outcomes
