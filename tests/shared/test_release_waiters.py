"""A release whose earliest waiter stops asking for the value just before the release reaches it.

The release reads the earliest waiter, then takes that waiter's locks. The waiter's own export can
commit in between and drop the value; the release must then hand the value to the next waiter instead
of leaving it free until the hourly sweep. The interleaving is forced by running the waiter's export
right after the release has read who waits, on the real store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection

from shared.core.values import value_key
from shared.exports import applier as applier_module
from shared.exports.applier import ExportApplier
from shared.release.sweep import sweep
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.workers.helpers import object_view

VALUE = "contested@contoso.com"


def _waiting_for_the_value(tenant: Tenant, applier: ExportApplier) -> None:
    """`holder` holds VALUE; `first` and then `second` wait for it; the holder lets go."""
    applier.apply(export_line(tenant.name, "holder", "Contact", proxyAddresses=[f"SMTP:{VALUE}"]))
    for anchor in ("first", "second"):
        applier.apply(export_line(tenant.name, anchor, "Group", proxyAddresses=[f"SMTP:{VALUE}"]))
    applier.apply(export_line(tenant.name, "holder", "Contact", sequence=2, operation="delete"))


def _first_waiter_changes_its_mind_once(
    tenant: Tenant, applier: ExportApplier, monkeypatch: pytest.MonkeyPatch, module: Any
) -> list[str]:
    """Patch `module`'s view of who waits: the first read returns `first`, whose next export (dropping
    the value) then commits before the release takes its locks. Returns the anchors the reads returned."""
    real: Callable[[Connection, int, str], str | None] = applier_module.earliest_waiter_anchor
    seen: list[str] = []

    def read_then_first_drops_it(connection: Connection, tenant_id: int, key: str) -> str | None:
        anchor = real(connection, tenant_id, key)
        if anchor is not None:
            seen.append(anchor)
        if anchor == "first" and len(seen) == 1:
            applier.apply(export_line(tenant.name, "first", "Group", sequence=2, proxyAddresses=[]))
        return anchor

    monkeypatch.setattr(module, "earliest_waiter_anchor", read_then_first_drops_it)
    return seen


def _holder_of_value(tenant: Tenant) -> list[str]:
    holders = []
    for anchor in ("first", "second"):
        view = object_view(tenant.name, anchor)
        assert view is not None
        if any(address.lower() == f"smtp:{VALUE}" for address in view.proxy_addresses):
            holders.append(anchor)
    return holders


def test_a_release_passes_over_a_waiter_that_stopped_asking_to_the_next_one(
    tenant: Tenant, applier: ExportApplier, monkeypatch: pytest.MonkeyPatch
) -> None:
    _waiting_for_the_value(tenant, applier)
    seen = _first_waiter_changes_its_mind_once(tenant, applier, monkeypatch, applier_module)

    outcome = applier.release(tenant.name, value_key(VALUE))

    assert seen[0] == "first", "the release first found the earliest waiter"
    assert outcome.status == "released", f"the value stayed free: {outcome}"
    assert _holder_of_value(tenant) == ["second"]


def test_the_sweep_passes_over_a_waiter_that_stopped_asking_too(
    tenant: Tenant, applier: ExportApplier, monkeypatch: pytest.MonkeyPatch
) -> None:
    _waiting_for_the_value(tenant, applier)
    applied_first_change: list[bool] = []
    real_release_many = ExportApplier.release_many

    def first_drops_it_before_its_release(self: ExportApplier, releases: list[tuple[str, str, str]]) -> Any:
        if any(anchor == "first" for _, anchor, _ in releases) and not applied_first_change:
            applied_first_change.append(True)
            self.apply(export_line(tenant.name, "first", "Group", sequence=2, proxyAddresses=[]))
        return real_release_many(self, releases)

    monkeypatch.setattr(ExportApplier, "release_many", first_drops_it_before_its_release)

    result = sweep(applier, tenant=tenant.name)

    assert applied_first_change, "the sweep went to the earliest waiter first"
    assert result.released == 1
    assert _holder_of_value(tenant) == ["second"]
