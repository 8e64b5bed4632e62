"""The pure decision: who keeps a value, what is quarantined, what is released."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.decision import (
    CurrentState,
    DesiredState,
    ExportPlan,
    Features,
    LegacyRejection,
    PropertyName,
    plan_export,
)
from shared.core.values import parse_proxy_address, value_key
from tests.directory_model import ModelTenant
from tests.invariants import claims_not_asked_for

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def desired(upn: str | None = None, *proxies: str) -> DesiredState:
    return DesiredState(upn=upn, proxy_addresses=tuple(parse_proxy_address(p) for p in proxies))


def plan(
    want: DesiredState, holders: dict[str, str], features: Features = Features(), current: CurrentState | None = None
) -> ExportPlan:
    result = plan_export(want, current or CurrentState("me"), holders, features, NOW)
    assert isinstance(result, ExportPlan)
    return result


def test_a_free_upn_is_claimed_and_nothing_is_quarantined() -> None:
    result = plan(desired("bob@contoso.com", "SMTP:bob@contoso.com"), holders={})
    assert result.upn == "bob@contoso.com"
    assert result.claim == {"bob@contoso.com"}
    assert result.open_quarantines == ()


def test_a_taken_upn_asks_for_a_placeholder_and_names_the_holder() -> None:
    result = plan(desired("Bob@Contoso.com"), holders={"bob@contoso.com": "first"})
    assert result.needs_placeholder and result.upn is None
    (entry,) = result.open_quarantines
    assert (entry.property_name, entry.value, entry.conflicting_object_id) == (
        PropertyName.USER_PRINCIPAL_NAME,
        "Bob@Contoso.com",
        "first",
    )


def test_the_same_value_as_upn_and_proxy_gives_one_entry_named_after_the_upn() -> None:
    result = plan(
        desired("bob@contoso.com", "SMTP:bob@contoso.com", "smtp:b2@contoso.com"), holders={"bob@contoso.com": "first"}
    )
    assert [q.property_name for q in result.open_quarantines] == [PropertyName.USER_PRINCIPAL_NAME]
    assert result.proxy_addresses == ("smtp:b2@contoso.com",)


def test_a_taken_smtp_address_is_left_out_and_other_proxy_types_are_never_checked() -> None:
    result = plan(
        desired(None, "SMTP:shared@contoso.com", "X500:/o=a", "SIP:shared@contoso.com"),
        holders={"shared@contoso.com": "user"},
    )
    assert result.proxy_addresses == ("X500:/o=a", "SIP:shared@contoso.com")
    assert [q.key for q in result.open_quarantines] == ["shared@contoso.com"]


def test_a_value_the_object_already_holds_is_no_conflict() -> None:
    current = CurrentState("me", "bob@contoso.com", frozenset({"bob@contoso.com"}))
    result = plan(desired("BOB@contoso.com"), holders={"bob@contoso.com": "me"}, current=current)
    assert result.claim == frozenset() and result.release == frozenset() and result.open_quarantines == ()


def test_legacy_mode_rejects_the_whole_export_on_its_attribute_only() -> None:
    upn_off = Features(upn_resiliency=False, proxy_resiliency=True)
    rejected = plan_export(desired("bob@contoso.com"), CurrentState("me"), {"bob@contoso.com": "x"}, upn_off, NOW)
    assert isinstance(rejected, LegacyRejection)
    assert rejected.conflicts[0].holder == "x"
    # A proxy conflict is still quarantined when only the UPN feature is off.
    result = plan(desired("new@contoso.com", "smtp:shared@contoso.com"), {"shared@contoso.com": "x"}, upn_off)
    assert result.quarantined == {"shared@contoso.com"}


def test_a_value_no_longer_asked_for_is_released_and_its_entry_closed() -> None:
    model = ModelTenant()
    model.export("holder", desired("a@contoso.com"))
    model.export("waiter", desired("w@contoso.com", "smtp:a@contoso.com"))
    assert set(model.objects["waiter"].quarantines) == {"a@contoso.com"}
    model.export("waiter", desired("w@contoso.com"))
    assert model.objects["waiter"].quarantines == {}


def test_a_placeholder_is_kept_while_the_conflict_lasts_and_freed_on_release() -> None:
    model = ModelTenant()
    model.export("first", desired("bob@contoso.com"))
    model.export("second", desired("bob@contoso.com"))
    placeholder = model.objects["second"].upn
    assert placeholder is not None and placeholder.startswith("bob+") and placeholder.endswith("@t.onmicrosoft.com")
    model.export("second", desired("bob@contoso.com"))  # re-export: same placeholder, no churn
    assert model.objects["second"].upn == placeholder
    model.delete("first")
    assert model.release("bob@contoso.com") == model.objects["second"].object_id
    assert model.objects["second"].upn == "bob@contoso.com"
    assert value_key(placeholder) not in model.claims


def test_waiters_are_served_in_quarantine_order() -> None:
    model = ModelTenant()
    model.export("h", desired(None, "SMTP:x@contoso.com"))
    for name in ("w1", "w2", "w3"):
        model.export(name, desired(None, "SMTP:x@contoso.com"))
    waiter_ids = [model.objects[n].object_id for n in ("w1", "w2", "w3")]
    order = []
    for holder in ("h", "w1", "w2"):
        model.delete(holder)
        order.append(model.release("x@contoso.com"))
    assert order == waiter_ids


# --- property-based: random operation sequences keep every invariant -----------------------------

ADDRESSES = ["a@contoso.com", "b@contoso.com", "c@contoso.com", "d@fabrikam.com"]
ANCHORS = ["u1", "u2", "u3", "g1", "g2", "c1"]


def _cased(address: str, upper: bool) -> str:
    return address.upper() if upper else address


@st.composite
def desired_states(draw: st.DrawFn, anchor: str) -> DesiredState:
    upn = None
    if anchor.startswith("u"):
        upn = _cased(draw(st.sampled_from(ADDRESSES)), draw(st.booleans()))
    picked = draw(st.lists(st.sampled_from(ADDRESSES), unique=True, max_size=3))
    proxies = [f"{draw(st.sampled_from(['SMTP', 'smtp']))}:{_cased(a, draw(st.booleans()))}" for a in picked]
    if draw(st.booleans()):
        proxies.append("X500:/o=shared/cn=same-for-all")
    return desired(upn, *proxies)


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, DesiredState | None]]:
    ops = []
    for _ in range(draw(st.integers(1, 40))):
        anchor = draw(st.sampled_from(ANCHORS))
        ops.append((anchor, None if draw(st.integers(0, 5)) == 0 else draw(desired_states(anchor))))
    return ops


def assert_invariants(model: ModelTenant) -> None:
    """The store's invariants on the model, and two that `tests.invariants` also asks of the real store.

    No object keeps a claim it no longer asks for (the same `claims_not_asked_for`). Who an entry
    names is checked on the stored name, the model having no read side: the object that held the value
    when the entry was opened (a kept entry keeps its time), or one that took the value over since.
    The stored name may thus be a holder that has let go; the store's read side then names the holder
    now, which the race test checks on the real store (`tests.invariants.misnamed_holders`).
    """
    holders_seen: dict[str, str] = {}
    for anchor, obj in model.objects.items():
        for key in obj.held:
            assert key not in holders_seen, f"{key} held by {holders_seen.get(key)} and {obj.object_id}"
            holders_seen[key] = obj.object_id
        wanted = obj.desired.wanted()
        for key in wanted:
            held, waiting = key in obj.held, key in obj.quarantines
            assert held != waiting, f"{anchor} must hold {key} or have exactly one entry for it"
            if waiting:
                entry = obj.quarantines[key]
                assert entry.conflicting_object_id != obj.object_id
                holders = model.holders_since(key, entry.occurred)
                assert entry.conflicting_object_id in holders, (
                    f"{anchor}'s entry for {key} names {entry.conflicting_object_id}, "
                    f"but only {sorted(holders)} held it since the entry was opened"
                )
        assert set(obj.quarantines) <= set(wanted), f"{anchor} keeps an entry for a value it no longer asks for"
        kept = claims_not_asked_for(obj.held, wanted, obj.upn, obj.desired.upn, model.initial_domain)
        assert kept == [], f"{anchor} keeps claims on {kept}, which it no longer asks for"
        upn = obj.desired.upn
        if upn is not None:
            assert obj.upn is not None
            if value_key(upn) in obj.quarantines:
                assert "+" in obj.upn.partition("@")[0] and value_key(obj.upn) in obj.held
            else:
                assert obj.upn == upn
        expected = tuple(p.raw for p in obj.desired.proxy_addresses if not (p.is_smtp and p.key in obj.quarantines))
        assert obj.proxy_addresses == expected
    assert holders_seen == model.claims


@settings(max_examples=300, deadline=None)
@given(operations())
def test_random_operation_sequences_keep_every_invariant(ops: list[tuple[str, DesiredState | None]]) -> None:
    model = ModelTenant()
    for anchor, state in ops:
        if state is None:
            model.delete(anchor)
        else:
            model.export(anchor, state)
        assert_invariants(model)
    model.sweep()
    assert_invariants(model)
    for obj in model.objects.values():
        for key in obj.quarantines:
            assert key in model.claims, "after the sweep no one waits for a free value"


@settings(max_examples=200, deadline=None)
@given(operations(), st.booleans(), st.booleans())
def test_legacy_mode_never_touches_the_object_and_never_quarantines_its_attribute(
    ops: list[tuple[str, DesiredState | None]], upn_on: bool, proxy_on: bool
) -> None:
    """A rejected export changes nothing because the model writes nothing for one, so what is checked
    is the decision itself, against the claims before the export: it rejects exactly when another
    object holds a value of an attribute whose feature is off, and names exactly those values and
    their holders; otherwise it plans the export, which must then hold or quarantine every value."""
    features = Features(upn_resiliency=upn_on, proxy_resiliency=proxy_on)
    model = ModelTenant(features)
    for anchor, state in ops:
        if state is None:
            model.delete(anchor)
            continue
        me = model.objects[anchor].object_id if anchor in model.objects else None
        must_refuse = {
            (key, model.claims[key])
            for key, (prop, _) in state.wanted().items()
            if model.claims.get(key, me) != me and not features.resilient_for(prop)
        }
        result = model.export(anchor, state)
        if must_refuse:
            assert isinstance(result, LegacyRejection), f"{anchor} took values held by {sorted(must_refuse)}"
            assert {(c.key, c.holder) for c in result.conflicts} == must_refuse
        else:
            assert isinstance(result, ExportPlan), f"{anchor} was refused with no value held by another object"
        assert_invariants(model)
        for obj in model.objects.values():
            for entry in obj.quarantines.values():
                assert Features(upn_on, proxy_on).resilient_for(entry.property_name)
