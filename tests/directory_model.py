"""An in-memory tenant driven only by the pure decision functions, for property tests.

It does what `shared.directory.store` does with SQL, with dicts, so the invariants can be checked over
thousands of random operation sequences without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count

from shared.core.decision import (
    CurrentState,
    DesiredState,
    ExportPlan,
    Features,
    LegacyRejection,
    Quarantine,
    earliest_waiter,
    plan_delete,
    plan_export,
)
from shared.core.values import placeholder_upn, value_key


@dataclass
class ModelObject:
    object_id: str
    desired: DesiredState
    upn: str | None = None
    proxy_addresses: tuple[str, ...] = ()
    held: set[str] = field(default_factory=set)
    quarantines: dict[str, Quarantine] = field(default_factory=dict)

    def current(self) -> CurrentState:
        return CurrentState(self.object_id, self.upn, frozenset(self.held), dict(self.quarantines))


class ModelTenant:
    def __init__(self, features: Features = Features(), initial_domain: str = "t.onmicrosoft.com") -> None:
        self.features = features
        self.initial_domain = initial_domain
        self.objects: dict[str, ModelObject] = {}
        self.claims: dict[str, str] = {}
        self.claim_log: dict[str, list[tuple[datetime, str]]] = {}  # key -> (when, who) for every claim
        self.rejections: list[LegacyRejection] = []
        self._clock = count()
        self._ids = count(1)

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self._clock))

    def by_id(self, object_id: str) -> ModelObject:
        return next(o for o in self.objects.values() if o.object_id == object_id)

    def holders_since(self, key: str, when: datetime) -> set[str]:
        """Who held `key` when the operation planned at `when` ran, and who took it over since."""
        log = self.claim_log.get(key, [])
        before = [who for claimed_at, who in log if claimed_at < when]
        return set(before[-1:]) | {who for claimed_at, who in log if claimed_at >= when}

    def export(self, anchor: str, desired: DesiredState) -> ExportPlan | LegacyRejection:
        obj = self.objects.get(anchor) or ModelObject(f"obj-{next(self._ids)}", desired)
        now = self.now()
        plan = plan_export(desired, obj.current(), self._holders(desired), self.features, now)
        if isinstance(plan, LegacyRejection):
            self.rejections.append(plan)
            return plan
        self.objects[anchor] = obj
        obj.desired = desired
        self._write(obj, plan, now)
        return plan

    def delete(self, anchor: str) -> None:
        obj = self.objects.pop(anchor, None)
        if obj is not None:
            self._write(obj, plan_delete(obj.current()), self.now())

    def release(self, key: str) -> str | None:
        """What the release task does for one freed value: re-plan the earliest waiter."""
        if key in self.claims:
            return None
        waiters = [(o.quarantines[key].occurred, o.object_id) for o in self.objects.values() if key in o.quarantines]
        winner_id = earliest_waiter(waiters)
        if winner_id is None:
            return None
        winner = self.by_id(winner_id)
        now = self.now()
        plan = plan_export(winner.desired, winner.current(), self._holders(winner.desired), self.features, now)
        assert not isinstance(plan, LegacyRejection)
        self._write(winner, plan, now)
        return winner_id

    def sweep(self) -> None:
        """Release until no entry waits for a free value (the hourly sweep, to a fixed point)."""
        while True:
            free = sorted({k for o in self.objects.values() for k in o.quarantines if k not in self.claims})
            if not free:
                return
            for key in free:
                self.release(key)

    def _holders(self, desired: DesiredState) -> dict[str, str]:
        return {k: self.claims[k] for k in desired.wanted() if k in self.claims}

    def _write(self, obj: ModelObject, plan: ExportPlan, now: datetime) -> None:
        upn = plan.upn
        claim = set(plan.claim)
        if plan.needs_placeholder:
            assert obj.desired.upn is not None
            digits = next(
                d
                for d in range(10_000)
                if value_key(placeholder_upn(obj.desired.upn, d, self.initial_domain)) not in self.claims
            )
            upn = placeholder_upn(obj.desired.upn, digits, self.initial_domain)
            claim.add(value_key(upn))
        for key in plan.release:
            assert self.claims.pop(key) == obj.object_id, "released a value the object did not hold"
            obj.held.discard(key)
        for key in claim:
            assert key not in self.claims, f"{key} would get a second holder"
            self.claims[key] = obj.object_id
            self.claim_log.setdefault(key, []).append((now, obj.object_id))
            obj.held.add(key)
        for key in plan.close_quarantines:
            obj.quarantines.pop(key, None)
        for q in plan.open_quarantines:
            obj.quarantines[q.key] = q
        obj.upn = upn
        obj.proxy_addresses = plan.proxy_addresses
