"""What an applied plan does to the object's conflicts, as history: which it opens and which it ends.

A conflict is a waiting object and one value. A plan that closes an entry ends the conflict as
`released` when the object now claims the value (the holder let go) and as `dropped` when it no longer
asks for it (its export changed the value, or the object was deleted). An entry closed and opened
again in the same plan (the value is held by another object now) is the same conflict going on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.core.decision import CurrentState, ExportPlan

EventKind = Literal["opened", "reported", "released", "dropped"]
ENDS: tuple[EventKind, ...] = ("released", "dropped")


@dataclass(frozen=True, slots=True)
class ConflictChange:
    """One event a plan writes to a conflict's history."""

    kind: EventKind
    key: str
    property_name: str
    property_value: str
    holder_object_id: str | None  # for `opened`: who held the value then


def conflict_changes(current: CurrentState, plan: ExportPlan) -> list[ConflictChange]:
    """The conflicts `plan` ends (in key order), then those it opens (in the plan's order)."""
    reopened = {q.key for q in plan.open_quarantines}
    changes: list[ConflictChange] = []
    for key in sorted(plan.close_quarantines - reopened):
        ended = current.quarantines.get(key)
        if ended is not None:
            kind: EventKind = "released" if key in plan.claim else "dropped"
            changes.append(ConflictChange(kind, key, ended.property_name.value, ended.value, None))
    for opened in plan.open_quarantines:
        if opened.key not in current.quarantines:
            changes.append(
                ConflictChange(
                    "opened", opened.key, opened.property_name.value, opened.value, opened.conflicting_object_id
                )
            )
    return changes
