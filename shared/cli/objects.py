"""`syncguard object show|list`: objects as the cloud sees them (effective UPN and proxy addresses)."""

from __future__ import annotations

import click

from shared import queries
from shared.cli.root import cli, emit_json, emit_table, json_option, tenant_option
from shared.cli.text_tables import render_table
from shared.queries.conflict_history import object_history
from shared.store.engine import transaction
from shared.tenants.registry import (
    require,
)

# --- object -------------------------------------------------------------------------------------


@cli.group("object")
def object_group() -> None:
    """Directory objects as the cloud holds them."""


@object_group.command("show")
@tenant_option
@click.option("--source-anchor", required=True, help="The object's on-premises immutable id.")
@click.option(
    "--history",
    is_flag=True,
    help="With --json, add conflictHistory: every conflict's events, oldest first (the text always shows it).",
)
@json_option
def object_show(tenant_name: str, source_anchor: str, history: bool, as_json: bool) -> None:
    """Show one object's effective UPN and proxy addresses, its provisioning errors and its conflicts' history."""
    with transaction() as session:
        tenant = require(session, tenant_name)
        detail = queries.show_object(session, tenant, source_anchor)
        events = object_history(session, tenant, source_anchor) if detail is not None else []
    if detail is None:
        raise click.ClickException(f"tenant {tenant_name!r} has no object with sourceAnchor {source_anchor!r}")
    if as_json:  # the contract's keys (docs/design.md §3); the history only when asked for
        shown = detail.as_json()
        emit_json({**shown, "conflictHistory": [e.as_json() for e in events]} if history else shown)
        return
    click.echo(
        render_table(
            ["Field", "Value"],
            [
                ["objectId", detail.object_id],
                ["sourceAnchor", detail.source_anchor],
                ["objectType", detail.object_type],
                ["displayName", detail.display_name],
                ["userPrincipalName", detail.user_principal_name],
                *(["proxyAddresses" if i == 0 else "", p] for i, p in enumerate(detail.proxy_addresses or ("",))),
            ],
        )
    )
    click.echo()
    emit_table(
        ["PropertyName", "PropertyValue", "ConflictingObjectId", "TimeOccurred"],
        (
            [e.property_name, e.property_value, e.conflicting_object_id, e.time_occurred]
            for e in detail.provisioning_errors
        ),
        "no provisioning errors",
    )
    click.echo()
    emit_table(
        ["Event", "At", "PropertyName", "PropertyValue", "Sequence", "ConflictingObjectId", "Report"],
        (
            [e.kind, e.at, e.property_name, e.property_value, e.sequence, e.holder_object_id, e.report_id]
            for e in events
        ),
        "no conflict history",
    )


@object_group.command("list")
@tenant_option
@json_option
def object_list(tenant_name: str, as_json: bool) -> None:
    """List the tenant's objects with how many provisioning errors each has."""
    with transaction() as session:
        rows = queries.list_objects(session, require(session, tenant_name))
    if as_json:
        emit_json([row.as_json() for row in rows])
        return
    emit_table(
        ["SourceAnchor", "ObjectType", "DisplayName", "UserPrincipalName", "ProxyAddresses", "Errors"],
        (
            [
                r.source_anchor,
                r.object_type,
                r.display_name,
                r.user_principal_name,
                r.proxy_addresses,
                r.provisioning_error_count,
            ]
            for r in rows
        ),
        "no objects",
    )
