"""Two tenants with the same objects, values and conflicts: the same value in two tenants never
conflicts, and no query, report or command-line listing of one tenant shows the other's data.
(The HTTP API's pages have their own isolation tests under tests/api.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from shared import queries
from shared.cli import cli
from shared.exports.applier import ExportApplier
from shared.exports.failures import record_dead_letter
from shared.reports.content import gather
from shared.reports.rendering import render_email
from shared.store.engine import transaction
from shared.store.tables import Tenant
from shared.tenants.registry import require
from tests.conftest import export_line
from tests.faults.cluster import Cluster
from tests.workers.helpers import failures, object_view

pytestmark = [pytest.mark.integration, pytest.mark.faults]

SAME = "same@contoso.com"


@dataclass(frozen=True)
class Populated:
    tenant: Tenant
    marker: str  # in every display name of this tenant's objects
    object_ids: tuple[str, ...]


def populate(applier: ExportApplier, tenant: Tenant, marker: str) -> Populated:
    """A holder, a waiter for its UPN and address, and an invalid export: the same in each tenant."""
    name = tenant.name
    applier.apply(
        export_line(
            name, "holder", displayName=f"{marker} Holder", userPrincipalName=SAME, proxyAddresses=[f"SMTP:{SAME}"]
        )
    )
    applier.apply(
        export_line(
            name, "waiter", displayName=f"{marker} Waiter", userPrincipalName=SAME, proxyAddresses=[f"smtp:{SAME}"]
        )
    )
    applier.apply(export_line(name, "team", "Group", displayName=f"{marker} Team", proxyAddresses=[f"smtp:{SAME}"]))
    applier.apply(export_line(name, "bad", "Group", displayName=f"{marker}\tBad"))  # its message quotes the name
    with transaction() as session:  # and one valid export that ran out of retries
        stuck = json.loads(export_line(name, "stuck", "Contact", displayName=f"{marker} Stuck"))
        record_dead_letter(session, stuck, f"{marker} Stuck gave up after 51 attempts", attempts=51)
    views = [object_view(name, anchor) for anchor in ("holder", "waiter", "team")]
    assert all(v is not None for v in views)
    return Populated(tenant, marker, tuple(v.object_id for v in views if v is not None))


def everything_shown(tenant: Tenant) -> str:
    """Every read of one tenant: queries, the error report, and the command line's listings."""
    shown: list[Any] = []
    with transaction() as session:
        row = require(session, tenant.name)
        shown.append(queries.list_provisioning_errors(session, row, category="PropertyConflict", limit=None))
        shown.append(queries.list_provisioning_errors(session, row, category="PropertyConflict", search="Holder"))
        shown.append(
            queries.list_provisioning_errors(
                session, row, category="PropertyConflict", property_name="ProxyAddresses", property_value=SAME
            )
        )
        shown.append(queries.list_failures(session, row))
        shown.append(queries.count_failures(session, row))
        shown.append([queries.show_object(session, row, anchor) for anchor in ("holder", "waiter", "team")])
        shown.append(queries.list_objects(session, row))
        wanted = queries.ErrorFilter()
        shown.append(queries.list_conflicted_objects(session, row, wanted))
        shown.append(queries.count_conflicted_objects_by_type(session, row, wanted))
        report = gather(session, row)
    email = render_email(report, "syncguard@contoso.test")
    for kind in ("plain", "html"):
        body = email.get_body((kind,))
        assert body is not None
        shown.append(body.get_content())
    shown.append(report)
    runner = CliRunner()
    for args in (
        ["errors", "list", "--tenant", tenant.name, "--error-category", "PropertyConflict", "--all", "--json"],
        ["failures", "list", "--tenant", tenant.name, "--json"],
        ["object", "list", "--tenant", tenant.name, "--json"],
        ["object", "show", "--tenant", tenant.name, "--source-anchor", "waiter", "--json"],
    ):
        result = runner.invoke(cli, args, prog_name="syncguard")
        assert result.exit_code == 0, result.output
        shown.append(result.stdout)
    return json.dumps(shown, default=_plain)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def test_the_same_values_in_two_tenants_never_conflict_and_no_read_shows_the_other_tenant(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, cluster: Cluster
) -> None:
    alpha = populate(applier, make_tenant(), "Alpha")
    beta = populate(applier, make_tenant(), "Beta")

    for side in (alpha, beta):
        holder, waiter = object_view(side.tenant.name, "holder"), object_view(side.tenant.name, "waiter")
        assert holder is not None and waiter is not None
        assert holder.upn == SAME and holder.entries == [], "the same value in the other tenant is no conflict"
        assert {e["conflictingObjectId"] for e in waiter.entries} == {holder.object_id}
        assert sorted(str(f.source_anchor) for f in failures(side.tenant.name)) == ["bad", "stuck"]

    for side, other in ((alpha, beta), (beta, alpha)):
        shown = everything_shown(side.tenant)
        assert f"{side.marker} Waiter" in shown and side.object_ids[0] in shown, "the reads show the tenant's own data"
        leaked = [m for m in (other.marker, other.tenant.name, *other.object_ids) if m in shown]
        assert leaked == [], f"{side.tenant.name}'s reads show {other.tenant.name}'s {leaked}"

    # A retry re-sends the tenant's own failed exports only (the invalid one stays invalid), though the
    # other tenant has failures for the same objects.
    retried = cluster.syncguard("failures", "retry", "--tenant", alpha.tenant.name)
    assert retried.returncode == 0, retried.stderr
    queued = [json.loads(m) for m in cluster.broker.client().lrange("exports", 0, -1)]
    assert len(queued) == 1 and beta.tenant.name not in json.dumps(queued) and alpha.tenant.name in json.dumps(queued)
