"""`ExportApplier.apply_many`: a batch in one transaction, and what it leaves for `apply` alone."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from redis import Redis

from shared.core.values import value_key
from shared.directory.objects import TenantInfo
from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager, value_lock_key
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.shared.test_placeholders import WANTED, _claim_placeholders, crowded  # noqa: F401 (a fixture)
from tests.workers.helpers import object_view


def test_a_later_export_of_the_batch_sees_what_an_earlier_one_claimed(tenant: Tenant, applier: ExportApplier) -> None:
    outcomes = applier.apply_many(
        [
            export_line(tenant.name, "first", userPrincipalName="ann@contoso.com"),
            export_line(tenant.name, "second", userPrincipalName="ann@contoso.com"),
        ]
    )
    assert [o.status if o else None for o in outcomes] == ["applied", "applied"]
    assert outcomes[1] is not None and outcomes[1].quarantined == (value_key("ann@contoso.com"),)
    first, second = object_view(tenant.name, "first"), object_view(tenant.name, "second")
    assert first is not None and first.upn == "ann@contoso.com"
    assert second is not None and second.upn is not None and second.upn.startswith("ann+")
    assert [e["conflictingObjectId"] for e in second.entries] == [first.object_id]


def test_two_exports_of_one_object_in_a_batch_end_with_the_newer_one(tenant: Tenant, applier: ExportApplier) -> None:
    newer = export_line(tenant.name, "obj", sequence=2, userPrincipalName="new@contoso.com")
    older = export_line(tenant.name, "obj", sequence=1, userPrincipalName="old@contoso.com")
    outcomes = applier.apply_many([newer, older])
    assert [o.status if o else None for o in outcomes] == ["applied", "skipped"]
    view = object_view(tenant.name, "obj")
    assert view is not None and view.upn == "new@contoso.com"


def test_an_export_whose_value_another_holder_has_locked_is_left_to_apply_alone(
    tenant: Tenant, applier: ExportApplier, redis_client: Redis
) -> None:
    other = LockManager(redis_client)
    busy = [value_lock_key(tenant.name, value_key("busy@contoso.com"))]
    token = other.try_acquire(busy)
    waiting = export_line(tenant.name, "waits", userPrincipalName="busy@contoso.com")
    try:
        outcomes = applier.apply_many([export_line(tenant.name, "free", userPrincipalName="free@contoso.com"), waiting])
    finally:
        other.release(busy, token)
    assert outcomes[0] is not None and outcomes[0].status == "applied"
    assert outcomes[1] is None and object_view(tenant.name, "waits") is None
    assert applier.apply(waiting).status == "applied"


def test_invalid_input_is_left_to_apply_alone_which_records_why(tenant: Tenant, applier: ExportApplier) -> None:
    unknown_tenant = export_line("no-such-tenant", "x", userPrincipalName="x@contoso.com")
    outcomes = applier.apply_many(
        ["{not json", unknown_tenant, export_line(tenant.name, "ok", userPrincipalName="ok@contoso.com")]
    )
    assert outcomes[0] is None and outcomes[1] is None
    assert outcomes[2] is not None and outcomes[2].status == "applied"
    assert applier.apply("{not json").status == "failed"
    assert "does not exist" in (applier.apply(unknown_tenant).message or "")


def test_a_refused_export_does_not_stop_the_rest_of_the_batch(
    make_tenant: Callable[..., Tenant], applier: ExportApplier
) -> None:
    legacy = make_tenant(upn_resiliency=False)
    outcomes = applier.apply_many(
        [
            export_line(legacy.name, "holder", userPrincipalName="dup@contoso.com"),
            export_line(legacy.name, "refused", userPrincipalName="dup@contoso.com"),
            export_line(legacy.name, "after", userPrincipalName="after@contoso.com"),
        ]
    )
    assert [o.status if o else None for o in outcomes] == ["applied", "failed", "applied"]
    assert outcomes[1] is not None and outcomes[1].error_code == "AttributeValueMustBeUnique"
    assert object_view(legacy.name, "refused") is None


@pytest.fixture
def no_placeholders_left(crowded: tuple[TenantInfo, int]) -> TenantInfo:  # noqa: F811
    """Every placeholder for WANTED is claimed (`crowded` removes them afterwards)."""
    tenant_info, object_pk = crowded
    _claim_placeholders(tenant_info, object_pk, range(10_000))
    return tenant_info


def test_a_batch_that_fails_as_a_whole_writes_nothing_and_leaves_every_export_to_apply_alone(
    tenant: Tenant, applier: ExportApplier, no_placeholders_left: TenantInfo
) -> None:
    applier.apply(export_line(tenant.name, "holder", userPrincipalName=WANTED))
    outcomes = applier.apply_many(
        [
            export_line(tenant.name, "innocent", userPrincipalName="innocent@contoso.com"),
            export_line(tenant.name, "needs-a-placeholder", userPrincipalName=WANTED),
        ]
    )
    assert outcomes == [None, None]
    assert object_view(tenant.name, "innocent") is None, "the batch's transaction rolled back"
    assert (
        applier.apply(export_line(tenant.name, "innocent", userPrincipalName="innocent@contoso.com")).status
        == "applied"
    )


def test_batch_outcomes_keep_the_order_of_the_messages(tenant: Tenant, applier: ExportApplier) -> None:
    lines = [export_line(tenant.name, f"o{i}", userPrincipalName=f"o{i}@contoso.com") for i in range(7)]
    outcomes = applier.apply_many(lines)
    ids = [o.object_id if o else None for o in outcomes]
    views = [object_view(tenant.name, json.loads(line)["sourceAnchor"]) for line in lines]
    assert ids == [v.object_id if v else "missing" for v in views]
