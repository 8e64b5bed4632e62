"""Apply exports (or release one waiting value) under value locks, in one transaction.

The order is fixed: validate, lock the object and every value it wants (all-or-nothing), then one
transaction that reads the object, locks whatever else it holds, decides with `plan_export` and
writes the plan. Values freed by the commit that others wait for are returned so the caller
releases them after commit, never before.

`apply_many` does the same for a batch: one lock call for every export's set, then one
transaction, so the commit and the lock round trips are paid once per batch instead of once per
export. Inside it, the exports are read, decided and written in waves, one statement per step for
all of a wave (`_write_bulk`): a wave is the exports that share no key with an earlier one still
waiting. The few a wave cannot take apply one after another after them, each seeing the writes
before it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from shared.core.decision import (
    CurrentState,
    DesiredState,
    ExportPlan,
    LegacyRejection,
    Quarantine,
    plan_delete,
    plan_export,
)
from shared.core.export import ErrorCode, Export, ExportRejected, parse_export
from shared.core.history import conflict_changes
from shared.core.values import value_key
from shared.core.waves import next_wave
from shared.directory.claims import (
    ClaimTaken,
    claim_values,
    claim_values_many,
    earliest_waiter_anchor,
    is_held,
    release_and_close,
    write_claims_and_entries,
)
from shared.directory.history import change_rows, record_changes
from shared.directory.objects import (
    ObjectRow,
    TenantInfo,
    current_features,
    desired_state_of,
    insert_object,
    insert_objects,
    lock_object_row,
    lock_object_rows,
    read_batch_state,
    read_object_state,
    update_object,
)
from shared.directory.placeholders import effective_upn, mint_placeholder
from shared.exports.failures import clear_failures, record_failure
from shared.exports.outcomes import Outcome, RetryLater
from shared.exports.refusals import class_change, legacy_rejection, message_text
from shared.exports.tenant_cache import TenantDirectory
from shared.exports.transient import lost_race
from shared.locks.manager import LockManager, LocksBusy, export_lock_keys, new_token, value_lock_key
from shared.settings import Settings
from shared.store.engine import get_engine, transaction
from shared.store.tables import utcnow

log = logging.getLogger(__name__)

LockMore = Callable[[set[str]], None]
# Writes the independent part of a batch in bulk: (connection, taken indices, lock_more by tenant)
# -> the outcomes of the exports it took (None: alone, after the commit); the rest go one by one.
BulkWrite = Callable[[Connection, list[int], Callable[[str], LockMore]], dict[int, Outcome | None]]
# Waiters that stopped asking while a release came for them; past this many, the sweep takes over.
_MAX_WAITERS_PASSED_OVER = 10


class _NeedsMoreLocks(Exception):
    """The object holds values outside the lock set and they are busy: start over with all of them."""

    def __init__(self, keys: set[str]) -> None:
        super().__init__(f"{len(keys)} more value(s) to lock")
        self.keys = keys


class _Refused(Exception):
    """The export cannot apply as sent; raised to roll back, then recorded in its own transaction."""

    def __init__(self, rejection: ExportRejected) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class _BatchEntry:
    """One valid export of a batch, with the lock keys it needs."""

    index: int
    tenant: TenantInfo
    export: Export
    desired: DesiredState
    keys: list[str]


@dataclass(slots=True)
class _Planned:
    """One export of the bulk part, decided on the batch's reads, waiting for its writes."""

    entry: _BatchEntry
    obj: ObjectRow | None
    current: CurrentState
    plan: ExportPlan
    upn: str | None
    values: dict[str, Any]
    has_failures: bool
    freed: tuple[str, ...] = ()


def _object_values(
    export: Export, obj: ObjectRow | None, plan: ExportPlan, upn: str | None, now: datetime
) -> dict[str, Any]:
    """The object row's columns an applied export writes."""
    return {
        "object_class": export.object_class.value if obj is None or not export.is_delete else obj.object_class,
        "display_name": export.display_name,
        "wanted_upn": export.upn,
        "upn": upn,
        "wanted_proxy_addresses": [p.raw for p in export.proxy_addresses],
        "proxy_addresses": list(plan.proxy_addresses),
        "attributes": export.attributes,
        "last_sequence": export.sequence,
        "deleted": export.is_delete,
        "updated_at": now,
    }


def _newly_opened(current: CurrentState, plan: ExportPlan) -> list[Quarantine]:
    return [q for q in plan.open_quarantines if current.quarantines.get(q.key) != q]


def _failed(rejected: ExportRejected, database_url: str) -> Outcome:
    with transaction(database_url) as session:
        record_failure(session, rejected)
    return Outcome("failed", rejected.tenant, error_code=rejected.code.value, message=rejected.message)


class ExportApplier:
    """Owns the lock manager, settings and tenant cache one worker process uses for every export."""

    def __init__(self, locks: LockManager, settings: Settings, attempts: int = 3) -> None:
        self.locks = locks
        self.settings = settings
        self.attempts = attempts
        self.tenants = TenantDirectory(settings.database_url)

    def apply(self, message: str | bytes | dict[str, Any]) -> Outcome:
        """Apply one export message; every invalid input ends as a recorded failure, not an exception."""
        try:
            export = parse_export(message, max_proxy_addresses=self.settings.max_proxy_addresses)
        except ExportRejected as rejected:
            return _failed(rejected, self.settings.database_url)
        tenant = self.tenants.get(export.tenant)
        if tenant is None:
            return _failed(
                ExportRejected(
                    ErrorCode.DATA_VALIDATION_FAILED,
                    f"tenant {export.tenant!r} does not exist; create it with 'syncguard tenant create'",
                    tenant=export.tenant,
                    source_anchor=export.source_anchor,
                    object_class=export.object_class.value,
                    raw=message_text(export),
                ),
                self.settings.database_url,
            )
        desired = DesiredState(upn=export.upn, proxy_addresses=export.proxy_addresses)
        try:
            return self._with_retries(
                lambda connection, lock_more: self._write_export(connection, lock_more, tenant, export, desired),
                tenant,
                export.source_anchor,
                set(desired.wanted()),
            )
        except _Refused as refused:
            return _failed(refused.rejection, self.settings.database_url)

    def apply_many(self, messages: Sequence[str | bytes | dict[str, Any]]) -> list[Outcome | None]:
        """Apply a batch of exports in one transaction; `None` marks one to hand to `apply` alone.

        An export goes alone when its message or tenant is invalid (`apply` records why), when
        another holder has one of its keys (`apply` waits for them), and all of them go alone when
        anything fails the batch as a whole: each then gets its own retries. Exports of the batch
        that share keys apply in message order and see each other's writes, as if one after another.
        """
        entries = [e for e in (self._batch_entry(i, m) for i, m in enumerate(messages)) if e is not None]
        refused: dict[int, ExportRejected] = {}

        def write(entry: _BatchEntry) -> Callable[[Connection, LockMore], Outcome | None]:
            def write_export(connection: Connection, lock_more: LockMore) -> Outcome | None:
                try:
                    return self._write_export(connection, lock_more, entry.tenant, entry.export, entry.desired)
                except _Refused as refusal:
                    refused[entry.index] = refusal.rejection
                    return None

            return write_export

        by_index = {e.index: e for e in entries}

        def bulk(
            connection: Connection, taken: list[int], lock_more_for: Callable[[str], LockMore]
        ) -> dict[int, Outcome | None]:
            return self._write_bulk(connection, [by_index[i] for i in taken], lock_more_for)

        outcomes = self._together(len(messages), [(e.index, e.tenant.name, e.keys, write(e)) for e in entries], bulk)
        if outcomes is None:
            return [None] * len(messages)
        for index, rejection in refused.items():
            outcomes[index] = _failed(rejection, self.settings.database_url)
        return outcomes

    def release_many(self, releases: Sequence[tuple[str, str, str]]) -> list[Outcome | None]:
        """Give each (tenant, waiting anchor, value) to its waiter, all in one transaction under one
        lock call, as `apply_many` does for exports; `None` marks one to hand to `release_to` alone
        (its keys were busy, or the batch failed as a whole). Measured on the sweep: a release alone
        paid two lock calls, a pool checkout's ping and a commit besides its own statements."""
        items: list[tuple[int, str, list[str], Callable[[Connection, LockMore], Outcome | None]]] = []
        for index, (tenant_name, anchor, key) in enumerate(releases):
            tenant = self.tenants.get(tenant_name)
            if tenant is None:
                continue

            def release_to(
                connection: Connection,
                lock_more: LockMore,
                tenant: TenantInfo = tenant,
                anchor: str = anchor,
                key: str = key,
            ) -> Outcome | None:
                return self._release_to(connection, lock_more, tenant, anchor, key)

            items.append((index, tenant.name, export_lock_keys(tenant.name, anchor, {key}), release_to))
        outcomes = self._together(len(releases), items)
        return [None] * len(releases) if outcomes is None else outcomes

    def _together(
        self,
        size: int,
        items: Sequence[tuple[int, str, list[str], Callable[[Connection, LockMore], Outcome | None]]],
        bulk: BulkWrite | None = None,
    ) -> list[Outcome | None] | None:
        """Run each item's write (index, tenant, lock keys, write) in one transaction, under one lock
        call for every item's keys; an item whose keys were busy keeps `None`. `None` for all when the
        batch failed as a whole (nothing of it was committed). `bulk` first takes the items it can
        write together; the others' writes run one after another after it."""
        outcomes: list[Outcome | None] = [None] * size
        if not items:
            return outcomes
        token = new_token()
        locked: set[str] = set()  # what the token holds: the sets taken, and values added by lock_more
        try:
            taken = self.locks.try_acquire_each([keys for _, _, keys, _ in items], token)
            locked.update(key for (_, _, keys, _), ok in zip(items, taken, strict=True) if ok for key in keys)
            with get_engine(self.settings.database_url).begin() as connection:
                done: dict[int, Outcome | None] = {}
                if bulk is not None:
                    indices = [index for (index, _, _, _), ok in zip(items, taken, strict=True) if ok]
                    done = bulk(connection, indices, lambda tenant: self._batch_lock_more(tenant, token, locked))
                    outcomes[:] = [done.get(i, outcome) for i, outcome in enumerate(outcomes)]
                for (index, tenant, _, write), ok in zip(items, taken, strict=True):
                    if not ok or index in done:
                        continue
                    try:
                        outcomes[index] = write(connection, self._batch_lock_more(tenant, token, locked))
                    except _NeedsMoreLocks:
                        pass  # read, nothing written: it goes alone, after this commit
        except Exception as exc:
            log.info("a batch of %d did not apply (%s); each goes alone", size, exc)
            return None
        finally:
            self._release_quietly(sorted(locked.union(*(keys for _, _, keys, _ in items))), token)
        return outcomes

    def _batch_entry(self, index: int, message: str | bytes | dict[str, Any]) -> _BatchEntry | None:
        try:
            export = parse_export(message, max_proxy_addresses=self.settings.max_proxy_addresses)
        except ExportRejected:
            return None
        tenant = self.tenants.get(export.tenant)
        if tenant is None:
            return None
        desired = DesiredState(upn=export.upn, proxy_addresses=export.proxy_addresses)
        keys = export_lock_keys(tenant.name, export.source_anchor, desired.wanted())
        return _BatchEntry(index, tenant, export, desired, keys)

    def _batch_lock_more(self, tenant: str, token: str, locked: set[str]) -> LockMore:
        """Values an export of the batch holds beyond those it wants: taken with the batch's token."""

        def lock_more(wanted: set[str]) -> None:
            missing = sorted({value_lock_key(tenant, k) for k in wanted} - locked)
            if not missing:
                return
            try:
                self.locks.try_acquire(missing, token=token)
            except LocksBusy:
                raise _NeedsMoreLocks(set(wanted)) from None
            locked.update(missing)

        return lock_more

    def _release_quietly(self, keys: list[str], token: str) -> None:
        """Give the batch's keys back; if Redis does not answer, they expire after LOCK_TTL_MS."""
        try:
            self.locks.release(keys, token)
        except Exception as exc:
            log.warning("could not give back %d lock(s), they expire on their own: %s", len(keys), exc)

    def release(self, tenant_name: str, key: str) -> Outcome:
        """Give a freed value to the earliest object waiting for it, if it is free.

        The earliest waiter is read before its locks are taken, so it may stop asking for the value in
        between (its own export commits first). Then the next waiter is tried, so a free value never
        waits for the hourly sweep because its first waiter changed its mind.
        """
        tenant = self.tenants.get(tenant_name)
        if tenant is None:
            return Outcome("nothing-to-release")
        tried: set[str] = set()
        while len(tried) <= _MAX_WAITERS_PASSED_OVER:
            with get_engine(self.settings.database_url).connect() as connection:
                anchor = earliest_waiter_anchor(connection, tenant.id, key)
                if anchor is None or anchor in tried or is_held(connection, tenant.id, key):
                    break
            outcome = self.release_to(tenant_name, anchor, key)
            if outcome.status != "nothing-to-release":
                return outcome
            tried.add(anchor)
        return Outcome("nothing-to-release", tenant.name)

    def release_to(self, tenant_name: str, anchor: str, key: str) -> Outcome:
        """Give `key` to the waiting object `anchor` (the sweep has already found it), if still free."""
        tenant = self.tenants.get(tenant_name)
        if tenant is None:
            return Outcome("nothing-to-release")
        return self._with_retries(
            lambda connection, lock_more: self._release_to(connection, lock_more, tenant, anchor, key),
            tenant,
            anchor,
            {key},
        )

    def _with_retries(
        self,
        write: Callable[[Connection, LockMore], Outcome],
        tenant: TenantInfo,
        source_anchor: str,
        lock_set: set[str],
    ) -> Outcome:
        """Lock, run one transaction, and start over after a lost race; decisions are re-made on fresh reads."""
        for _ in range(self.attempts):
            try:
                with self._locked(tenant.name, source_anchor, lock_set) as lock_more:
                    with get_engine(self.settings.database_url).begin() as connection:
                        return write(connection, lock_more)
            except _NeedsMoreLocks as more:
                lock_set = lock_set | more.keys
            except (ClaimTaken, DBAPIError) as exc:
                if not lost_race(exc):
                    raise
                log.info("lost a race to a concurrent transaction, applying again: %s", exc)
        raise RetryLater("the object's values kept changing under it")

    @contextmanager
    def _locked(self, tenant: str, source_anchor: str, lock_set: set[str]) -> Iterator[LockMore]:
        """Hold the object's and `lock_set`'s keys; yield a way to add keys without waiting for them.

        Values the object already holds are only known once its row is read; when they are busy,
        everything is given back and the export starts over with the full set (never a deadlock).
        """
        with ExitStack() as stack:
            keys = export_lock_keys(tenant, source_anchor, lock_set)
            stack.enter_context(self.locks.holding(keys, self.settings.lock_wait_s))
            locked = set(lock_set)

            def lock_more(wanted: set[str]) -> None:
                missing = wanted - locked
                if not missing:
                    return
                extra = sorted(value_lock_key(tenant, k) for k in missing)
                try:
                    token = self.locks.try_acquire(extra)
                except LocksBusy:
                    raise _NeedsMoreLocks(missing) from None
                stack.callback(self.locks.release, extra, token)
                locked.update(missing)

            yield lock_more

    def _write_bulk(
        self, connection: Connection, batch: list[_BatchEntry], lock_more_for: Callable[[str], LockMore]
    ) -> dict[int, Outcome | None]:
        """The batch in waves (`shared.core.waves`): each wave the exports that share no key with an
        earlier one still waiting, written together (`_write_wave`); the next wave sees its writes.
        What a wave does not take goes one by one after all of them, with every later export that
        shares a key with it, so the batch still applies as if in message order.
        """
        if connection.dialect.name != "postgresql":
            return {}
        by_index = {e.index: e for e in batch}
        done: dict[int, Outcome | None] = {}
        pending, blocked = batch, frozenset[str]()
        while pending:
            wave = next_wave([(e.index, e.keys) for e in pending], blocked)
            if len(wave.together) < 2:
                break  # one export in bulk costs what it costs alone: the rest go one by one, in order
            written = self._write_wave(connection, [by_index[i] for i in wave.together], lock_more_for)
            done.update(written)
            left = [key for i in wave.together if written.get(i) is None for key in by_index[i].keys]
            pending, blocked = [by_index[i] for i in wave.later], wave.blocked.union(left)
        return done

    def _write_wave(
        self, connection: Connection, independent: list[_BatchEntry], lock_more_for: Callable[[str], LockMore]
    ) -> dict[int, Outcome | None]:
        """Exports that share no key with each other, with one statement per step for all of them: lock
        their rows, read their state, insert the new objects, claim their values with their new entries.

        Measured (H4's profile): those four statements, once per export, were 57 % of a pool
        process's CPU. An export that wants a value another one of the wave holds is left to the
        one-by-one path (it must see that one's writes), as are refusals.
        """
        rows = lock_object_rows(connection, [(e.tenant.id, e.export.source_anchor) for e in independent])
        done: dict[int, Outcome | None] = {}
        pending: list[tuple[_BatchEntry, ObjectRow | None]] = []
        for entry in independent:
            obj = rows.get((entry.tenant.id, entry.export.source_anchor))
            if obj is not None and obj.last_sequence >= entry.export.sequence:
                done[entry.index] = Outcome("skipped", entry.tenant.name, obj.object_id)
            elif not (
                obj is not None
                and not obj.deleted
                and not entry.export.is_delete
                and obj.object_class != entry.export.object_class.value
            ):
                pending.append((entry, obj))
        state = read_batch_state(
            connection,
            [(e.tenant.name, e.export.source_anchor) for e, _ in pending],
            [obj.id for _, obj in pending if obj is not None],
            [(e.tenant.id, key) for e, _ in pending for key in e.desired.wanted()],
        )
        written_here = {obj.object_id for _, obj in pending if obj is not None}
        planned: list[_Planned] = []
        now = utcnow()
        for entry, obj in pending:
            tenant_id = entry.tenant.id
            holders = {
                k: state.holders[(tenant_id, k)] for k in entry.desired.wanted() if (tenant_id, k) in state.holders
            }
            own = obj.object_id if obj is not None else None
            if any(holder != own and holder in written_here for holder in holders.values()):
                continue  # another export of the bulk holds a value it wants: one by one, after it
            current = CurrentState(
                object_id=obj.object_id if obj else "",
                upn=obj.upn if obj else None,
                held=frozenset(state.held.get(obj.id, ()) if obj else ()),
                quarantines=state.quarantines.get(obj.id, {}) if obj else {},
            )
            try:
                lock_more_for(entry.tenant.name)(set(current.held))
            except _NeedsMoreLocks:
                done[entry.index] = None  # read, nothing written: it goes alone, after this commit
                continue
            if entry.export.is_delete:
                plan = plan_delete(current)
            else:
                decided = plan_export(entry.desired, current, holders, entry.tenant.features, now)
                if isinstance(decided, LegacyRejection):
                    continue  # refused, or features changed: the one-by-one path finds out which
                plan = decided
            upn = effective_upn(entry.tenant, entry.desired, plan)
            values = _object_values(entry.export, obj, plan, upn, now)
            has_failures = (entry.tenant.name, entry.export.source_anchor) in state.failed
            planned.append(_Planned(entry, obj, current, plan, upn, values, has_failures))
        for p in planned:
            if p.obj is not None:
                if p.obj.deleted and not p.entry.export.is_delete:
                    p.values["object_id"] = p.obj.object_id = str(uuid.uuid4())  # re-created: a new cloud object
                update_object(connection, p.obj, p.values)
                p.freed = release_and_close(connection, p.entry.tenant, p.obj, p.plan)
        new = [p for p in planned if p.obj is None]
        inserted = insert_objects(connection, [(p.entry.tenant, p.entry.export.source_anchor, p.values) for p in new])
        for p, obj in zip(new, inserted, strict=True):
            p.obj = obj
        claimed: list[tuple[TenantInfo, ObjectRow, Collection[str]]] = []
        for p in planned:
            assert p.obj is not None
            claim = set(p.plan.claim)
            if p.plan.needs_placeholder and p.upn is not None:
                claim.add(value_key(p.upn))
            claimed.append((p.entry.tenant, p.obj, claim))
        opened = [(p.entry.tenant, p.obj, _newly_opened(p.current, p.plan)) for p in planned if p.obj is not None]
        held_elsewhere = claim_values_many(connection, claimed, opened, now)
        record_changes(
            connection,
            [
                row
                for p in planned
                if p.obj is not None
                for row in change_rows(
                    p.entry.tenant.id, p.obj.id, p.entry.export.sequence, conflict_changes(p.current, p.plan), now
                )
            ],
        )
        for p in planned:
            assert p.obj is not None
            tenant, export, desired = p.entry.tenant, p.entry.export, p.entry.desired
            placeholder = value_key(p.upn) if p.plan.needs_placeholder and p.upn is not None else None
            taken = held_elsewhere.get(p.obj.id, set())
            if taken - {placeholder}:
                raise ClaimTaken(f"{sorted(taken - {placeholder})} were claimed by another object meanwhile")
            if taken and desired.upn is not None:
                upn = mint_placeholder(connection, tenant, desired.upn, avoid={*desired.wanted(), *taken})
                if claim_values(connection, tenant, p.obj, {value_key(upn)}, now):
                    raise ClaimTaken(f"placeholder {upn!r} was claimed by another object meanwhile")
                update_object(connection, p.obj, {"upn": upn})
            if p.has_failures:
                clear_failures(connection, tenant.name, export.source_anchor, export.sequence)
            done[p.entry.index] = Outcome(
                "applied",
                tenant.name,
                p.obj.object_id,
                quarantined=tuple(sorted(p.plan.quarantined)),
                freed_with_waiters=p.freed,
                newly_quarantined=len(_newly_opened(p.current, p.plan)),
            )
        return done

    def _write_export(
        self, connection: Connection, lock_more: LockMore, tenant: TenantInfo, export: Export, desired: DesiredState
    ) -> Outcome:
        obj = lock_object_row(connection, tenant, export.source_anchor)
        if obj is not None and obj.last_sequence >= export.sequence:
            return Outcome("skipped", tenant.name, obj.object_id)
        if (
            obj is not None
            and not obj.deleted
            and not export.is_delete
            and obj.object_class != export.object_class.value
        ):
            raise _Refused(class_change(export, obj))
        state = read_object_state(connection, tenant, export.source_anchor, obj, desired.wanted())
        current, holders = state.current, state.holders
        lock_more(set(current.held))
        now = utcnow()
        if export.is_delete:
            plan = plan_delete(current)
        else:
            decided = plan_export(desired, current, holders, tenant.features, now)
            if isinstance(decided, LegacyRejection):
                # The cache may predate an admin enabling resiliency (features only go from off to on):
                # refuse only on the features as committed now.
                fresh = current_features(connection, tenant.id)
                if fresh != tenant.features:
                    self.tenants.forget(tenant.name)
                    decided = plan_export(desired, current, holders, fresh, now)
            if isinstance(decided, LegacyRejection):
                raise _Refused(legacy_rejection(connection, export, decided))
            plan = decided
        upn = effective_upn(tenant, desired, plan)
        values = _object_values(export, obj, plan, upn, now)
        if obj is None:
            obj = insert_object(connection, tenant, export.source_anchor, values)
        else:
            if obj.deleted and not export.is_delete:
                values["object_id"] = obj.object_id = str(uuid.uuid4())  # re-created: a new cloud object
            update_object(connection, obj, values)
        written = write_claims_and_entries(connection, tenant, obj, current, plan, desired, upn, now, export.sequence)
        if written.upn != upn:
            update_object(connection, obj, {"upn": written.upn})
        newly = len(_newly_opened(current, plan))
        if state.has_failures:
            clear_failures(connection, tenant.name, export.source_anchor, export.sequence)
        return Outcome(
            "applied",
            tenant.name,
            obj.object_id,
            quarantined=tuple(sorted(plan.quarantined)),
            freed_with_waiters=written.freed_with_waiters,
            newly_quarantined=newly,
        )

    def _release_to(
        self, connection: Connection, lock_more: LockMore, tenant: TenantInfo, anchor: str, key: str
    ) -> Outcome:
        """Re-plan the waiter's last desired state: with the value free, the plan claims it."""
        obj = lock_object_row(connection, tenant, anchor)
        if obj is None or obj.deleted:
            return Outcome("nothing-to-release", tenant.name)
        desired = desired_state_of(obj)
        wanted = desired.wanted()
        state = read_object_state(connection, tenant, anchor, obj, wanted)
        current, holders = state.current, state.holders
        lock_more(set(current.held) | set(wanted))
        now = utcnow()
        plan = plan_export(desired, current, holders, tenant.features, now)
        if isinstance(plan, LegacyRejection) or key not in wanted or key in plan.quarantined:
            return Outcome("nothing-to-release", tenant.name, obj.object_id)
        upn = effective_upn(tenant, desired, plan)
        update_object(connection, obj, {"upn": upn, "proxy_addresses": list(plan.proxy_addresses)})
        written = write_claims_and_entries(connection, tenant, obj, current, plan, desired, upn, now, obj.last_sequence)
        if written.upn != upn:
            update_object(connection, obj, {"upn": written.upn})
        return Outcome(
            "released",
            tenant.name,
            obj.object_id,
            freed_with_waiters=written.freed_with_waiters,
        )
