"""Apply one export (or release one waiting value) under value locks, in one transaction.

The order is fixed: validate, read what the object holds, lock the object and every value it holds
or wants (all-or-nothing), then one transaction that decides with `plan_export` and writes the plan.
Values freed by the commit that others wait for are returned so the caller releases them after
commit, never before.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from shared.db import transaction
from shared.decision import DesiredState, LegacyRejection, plan_delete, plan_export
from shared.failures import clear_failures, record_failure
from shared.locks import LockManager, export_lock_keys
from shared.models import DirectoryObject, ProvisioningError, Tenant, utcnow
from shared.schemas import ErrorCode, Export, ExportRejected, parse_export
from shared.settings import Settings
from shared.store import (
    desired_state_of,
    features_of,
    held_keys_by_anchor,
    holders_of,
    keys_with_waiters,
    load_current_state,
    lock_object_row,
    mark_deleted,
    new_object,
    write_plan,
)
from shared.tenants import find as find_tenant

log = logging.getLogger(__name__)

# serialization_failure, deadlock_detected: PostgreSQL rolled one of two racing transactions back.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})

Status = Literal["applied", "skipped", "failed", "released", "nothing-to-release"]


class RetryLater(Exception):
    """A transient obstacle (busy locks, a lost race at the UNIQUE guard): apply the whole export again."""


class _LockSetChanged(Exception):
    """The object came to hold a value we did not lock between our read and our lock."""


class _Refused(Exception):
    """The export cannot apply as sent; raised to roll back, then recorded in its own transaction."""

    def __init__(self, rejection: ExportRejected) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    tenant: str | None = None
    object_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    quarantined: tuple[str, ...] = ()
    freed_with_waiters: tuple[str, ...] = field(default=())


def _failed(session: Session, rejected: ExportRejected) -> Outcome:
    record_failure(session, rejected)
    return Outcome("failed", rejected.tenant, error_code=rejected.code.value, message=rejected.message)


class ExportApplier:
    """Owns the lock manager and settings one worker process uses for every export."""

    def __init__(self, locks: LockManager, settings: Settings, attempts: int = 3) -> None:
        self.locks = locks
        self.settings = settings
        self.attempts = attempts

    def apply(self, message: str | bytes | dict[str, Any]) -> Outcome:
        """Apply one export message; every invalid input ends as a recorded failure, not an exception."""
        try:
            export = parse_export(message, max_proxy_addresses=self.settings.max_proxy_addresses)
        except ExportRejected as rejected:
            with transaction() as session:
                return _failed(session, rejected)
        return self._with_retries(lambda: self._apply_valid(export))

    def release(self, tenant_name: str, key: str) -> Outcome:
        """Give a freed value to the earliest object waiting for it, if it is free."""
        return self._with_retries(lambda: self._release(tenant_name, key))

    def _with_retries(self, attempt: Callable[[], Outcome]) -> Outcome:
        """Apply again from the start after a lost race; the decision is re-made on fresh reads."""
        for _ in range(self.attempts):
            try:
                return attempt()
            except _LockSetChanged:
                continue
            except IntegrityError as exc:
                log.info("lost a race at the uniqueness guard, applying again: %s", exc.orig)
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) not in _TRANSIENT_SQLSTATES:
                    raise
                log.info("the database rolled back a conflicting transaction, applying again: %s", exc.orig)
        raise RetryLater("the object's values kept changing under it")

    def _apply_valid(self, export: Export) -> Outcome:
        with transaction() as session:
            tenant = find_tenant(session, export.tenant)
            if tenant is None:
                return _failed(
                    session,
                    ExportRejected(
                        ErrorCode.DATA_VALIDATION_FAILED,
                        f"tenant {export.tenant!r} does not exist; create it with 'syncguard tenant create'",
                        tenant=export.tenant,
                        source_anchor=export.source_anchor,
                        object_class=export.object_class.value,
                        raw=_message_text(export),
                    ),
                )
            held_before = held_keys_by_anchor(session, tenant.id, export.source_anchor)
        desired = DesiredState(upn=export.upn, proxy_addresses=export.proxy_addresses)
        lock_set = held_before | set(desired.wanted())
        keys = export_lock_keys(tenant.name, export.source_anchor, lock_set)
        try:
            with self.locks.holding(keys, self.settings.lock_wait_s), transaction() as session:
                return self._write_export(session, tenant, export, desired, lock_set)
        except _Refused as refused:
            with transaction() as session:
                return _failed(session, refused.rejection)

    def _write_export(
        self, session: Session, tenant: Tenant, export: Export, desired: DesiredState, lock_set: set[str]
    ) -> Outcome:
        obj = lock_object_row(session, tenant.id, export.source_anchor)
        if obj is not None and obj.last_sequence >= export.sequence:
            return Outcome("skipped", tenant.name, obj.object_id)
        if obj is not None and not obj.deleted and obj.object_class != export.object_class.value:
            raise _Refused(_class_change(export, obj))
        now = utcnow()
        if export.is_delete:
            if obj is None:
                obj = new_object(session, tenant, export)
            current = load_current_state(session, obj)
            if not current.held <= lock_set:
                raise _LockSetChanged()
            plan = plan_delete(current)
            write_plan(session, tenant, obj, desired, current, plan)
            mark_deleted(session, obj, export.sequence, now)
            clear_failures(session, tenant.name, export.source_anchor)
            waiting = keys_with_waiters(session, tenant.id, plan.release)
            return Outcome("applied", tenant.name, obj.object_id, freed_with_waiters=tuple(waiting))

        if obj is None:
            obj = new_object(session, tenant, export)
        elif obj.deleted:
            obj.deleted = False
            obj.object_class = export.object_class.value
            obj.object_id = str(uuid.uuid4())  # a re-created object is a new cloud object
        current = load_current_state(session, obj)
        if not current.held <= lock_set:
            raise _LockSetChanged()
        holders = holders_of(session, tenant.id, desired.wanted())
        plan = plan_export(desired, current, holders, features_of(tenant), now)
        if isinstance(plan, LegacyRejection):
            raise _Refused(_legacy_rejection(session, export, plan))
        write_plan(session, tenant, obj, desired, current, plan)
        obj.display_name = export.display_name
        obj.wanted_upn = export.upn
        obj.wanted_proxy_addresses = [p.raw for p in export.proxy_addresses]
        obj.attributes = export.attributes
        obj.last_sequence = export.sequence
        obj.updated_at = now
        clear_failures(session, tenant.name, export.source_anchor)
        waiting = keys_with_waiters(session, tenant.id, plan.release)
        return Outcome(
            "applied",
            tenant.name,
            obj.object_id,
            quarantined=tuple(sorted(plan.quarantined)),
            freed_with_waiters=tuple(waiting),
        )

    def _release(self, tenant_name: str, key: str) -> Outcome:
        with transaction() as session:
            tenant = find_tenant(session, tenant_name)
            if tenant is None:
                return Outcome("nothing-to-release")
            waiter = session.execute(
                select(DirectoryObject.source_anchor)
                .join(ProvisioningError, ProvisioningError.object_pk == DirectoryObject.id)
                .where(ProvisioningError.tenant_id == tenant.id, ProvisioningError.key == key)
                .order_by(ProvisioningError.occurred_at, ProvisioningError.id)
                .limit(1)
            ).first()
            if waiter is None or holders_of(session, tenant.id, [key]):
                return Outcome("nothing-to-release")
            anchor = waiter.source_anchor
            obj = session.scalars(
                select(DirectoryObject).where(
                    DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == anchor
                )
            ).one()
            desired = desired_state_of(obj)
            lock_set = held_keys_by_anchor(session, tenant.id, anchor) | set(desired.wanted())
        keys = export_lock_keys(tenant.name, anchor, lock_set)
        with self.locks.holding(keys, self.settings.lock_wait_s), transaction() as session:
            obj = lock_object_row(session, tenant.id, anchor)
            if obj is None or obj.deleted:
                return Outcome("nothing-to-release")
            desired = desired_state_of(obj)
            current = load_current_state(session, obj)
            if not current.held <= lock_set or not set(desired.wanted()) <= lock_set:
                raise _LockSetChanged()
            plan = plan_export(
                desired, current, holders_of(session, tenant.id, desired.wanted()), features_of(tenant), utcnow()
            )
            if isinstance(plan, LegacyRejection) or key in plan.quarantined:
                return Outcome("nothing-to-release", object_id=obj.object_id)
            write_plan(session, tenant, obj, desired, current, plan)
            waiting = keys_with_waiters(session, tenant.id, plan.release)
            return Outcome("released", tenant.name, obj.object_id, freed_with_waiters=tuple(waiting))


def _message_text(export: Export) -> str:
    return json.dumps(export.to_message(), ensure_ascii=False)


def _class_change(export: Export, obj: DirectoryObject) -> ExportRejected:
    return ExportRejected(
        ErrorCode.DATA_VALIDATION_FAILED,
        f"object {export.source_anchor!r} is a {obj.object_class}; an export cannot turn it into a "
        f"{export.object_class.value} (delete it first)",
        tenant=export.tenant,
        source_anchor=export.source_anchor,
        object_class=export.object_class.value,
        raw=_message_text(export),
    )


def _legacy_rejection(session: Session, export: Export, rejection: LegacyRejection) -> ExportRejected:
    holder_ids = {c.holder for c in rejection.conflicts}
    names = dict(
        session.execute(
            select(DirectoryObject.object_id, DirectoryObject.display_name).where(
                DirectoryObject.object_id.in_(holder_ids)
            )
        ).all()
    )
    parts = []
    for c in rejection.conflicts:
        holder = f"object {c.holder}" + (f" ({names[c.holder]})" if names.get(c.holder) else "")
        feature = (
            "DuplicateUPNResiliency"
            if c.property_name.value == "UserPrincipalName"
            else "DuplicateProxyAddressResiliency"
        )
        parts.append(
            f"{c.property_name.value} value {c.value!r} is already held by {holder}; {feature} is off for this tenant"
        )
    return ExportRejected(
        ErrorCode.ATTRIBUTE_VALUE_MUST_BE_UNIQUE,
        "; ".join(parts),
        tenant=export.tenant,
        source_anchor=export.source_anchor,
        object_class=export.object_class.value,
        raw=_message_text(export),
    )
