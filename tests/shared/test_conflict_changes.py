"""`conflict_changes`: the history an applied plan writes tells the same story as the entries."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings

from shared.core.decision import DesiredState, ExportPlan
from shared.core.history import conflict_changes
from shared.core.values import value_key
from tests.directory_model import ModelObject, ModelTenant
from tests.shared.test_decision import desired, operations


class HistoryModel(ModelTenant):
    """The model tenant, writing each plan's conflict changes to a history as the store does."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[tuple[str, str], list[str]] = {}
        self.last_changes: list[tuple[str, str, str]] = []

    def _write(self, obj: ModelObject, plan: ExportPlan, now: datetime) -> None:
        changes = conflict_changes(obj.current(), plan)
        super()._write(obj, plan, now)
        self.last_changes = [(obj.object_id, c.key, c.kind) for c in changes]
        for change in changes:
            self.history.setdefault((obj.object_id, change.key), []).append(change.kind)
            if change.kind == "released":
                assert change.key in obj.held, "released, yet the object does not hold the value"
            if change.kind == "dropped":
                assert change.key not in obj.held and change.key not in obj.quarantines


def open_conflicts(model: HistoryModel) -> set[tuple[str, str]]:
    return {conflict for conflict, kinds in model.history.items() if kinds[-1] == "opened"}


@settings(max_examples=300, deadline=None)
@given(operations())
def test_the_history_opens_and_ends_each_conflict_in_turn_and_matches_the_entries(
    ops: list[tuple[str, DesiredState | None]],
) -> None:
    model = HistoryModel()
    for anchor, state in ops:
        if state is None:
            model.delete(anchor)
        else:
            model.export(anchor, state)
        entries = {(o.object_id, key) for o in model.objects.values() for key in o.quarantines}
        assert open_conflicts(model) == entries
    model.sweep()
    assert open_conflicts(model) == {(o.object_id, k) for o in model.objects.values() for k in o.quarantines}
    for conflict, kinds in model.history.items():
        assert kinds[0::2] == ["opened"] * len(kinds[0::2]), (conflict, kinds)
        assert all(kind in ("released", "dropped") for kind in kinds[1::2]), (conflict, kinds)


def test_a_waiter_served_by_a_release_has_its_conflict_released_and_one_that_stops_asking_dropped() -> None:
    model = HistoryModel()
    model.export("holder", desired("x@contoso.com"))
    model.export("first", desired("x@contoso.com"))
    model.export("second", desired("x@contoso.com"))
    first, second = model.objects["first"].object_id, model.objects["second"].object_id
    key = value_key("x@contoso.com")
    model.export("second", desired("other@contoso.com"))
    assert model.last_changes == [(second, key, "dropped")]
    model.export("holder", desired("y@contoso.com"))
    assert model.release(key) == first
    assert model.last_changes == [(first, key, "released")]
    assert model.history == {(first, key): ["opened", "released"], (second, key): ["opened", "dropped"]}
