"""A worker's tenant cache never makes it refuse an export the way legacy mode does after an admin
enabled resiliency: the refusal re-reads the features first."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from shared.exports.applier import ExportApplier
from shared.store.engine import transaction
from shared.store.tables import Tenant
from shared.tenants.registry import Feature, enable_feature
from tests.conftest import export_line
from tests.workers.helpers import failures, object_view


def test_an_export_right_after_enabling_resiliency_is_quarantined_not_refused(
    make_tenant: Callable[..., Tenant], applier: ExportApplier
) -> None:
    legacy = make_tenant(upn_resiliency=False)
    first = export_line(legacy.name, "first", userPrincipalName="taken@contoso.com")
    assert applier.apply(first).status == "applied"  # the applier now caches the tenant with the feature off
    refused = applier.apply(export_line(legacy.name, "second", userPrincipalName="taken@contoso.com"))
    assert refused.status == "failed" and refused.error_code == "AttributeValueMustBeUnique"

    with transaction() as session:
        tenant = session.scalars(select(Tenant).where(Tenant.name == legacy.name)).one()
        assert enable_feature(session, tenant, Feature.DUPLICATE_UPN_RESILIENCY)

    outcome = applier.apply(export_line(legacy.name, "second", sequence=2, userPrincipalName="taken@contoso.com"))
    assert outcome.status == "applied" and outcome.quarantined
    view = object_view(legacy.name, "second")
    assert view is not None and view.upn != "taken@contoso.com"
    assert failures(legacy.name) == []
