"""`syncguard errors list`: the tenant's dirSyncProvisioningErrors, filtered and sorted."""

from __future__ import annotations

import click

from shared import queries
from shared.cli.root import cli, emit_json, emit_table, json_option, tenant_option
from shared.store.engine import transaction
from shared.tenants.registry import (
    require,
)

# --- errors -------------------------------------------------------------------------------------


@cli.group("errors")
def errors_group() -> None:
    """Provisioning errors (dirSyncProvisioningErrors)."""


@errors_group.command("list")
@tenant_option
@click.option("--error-category", required=True, type=click.Choice(queries.ERROR_CATEGORIES))
@click.option("--property-name", type=click.Choice(["UserPrincipalName", "ProxyAddresses"]))
@click.option("--property-value", help="Only entries for this value (needs --property-name); case-insensitive.")
@click.option("--search-string", help="Substring of the display name, UPN or value; case-insensitive.")
@click.option(
    "--sort-field",
    type=click.Choice([f.value for f in queries.SortField]),
    default=queries.SortField.NONE.value,
    show_default=True,
)
@click.option(
    "--sort-direction",
    type=click.Choice([d.value for d in queries.SortDirection]),
    default=queries.SortDirection.ASCENDING.value,
    show_default=True,
)
@click.option("--max-results", type=click.IntRange(min=1), help=f"At most this many (default {queries.DEFAULT_LIMIT}).")
@click.option("--all", "all_results", is_flag=True, help="Every entry, no limit.")
@json_option
def errors_list(
    tenant_name: str,
    error_category: str,
    property_name: str | None,
    property_value: str | None,
    search_string: str | None,
    sort_field: str,
    sort_direction: str,
    max_results: int | None,
    all_results: bool,
    as_json: bool,
) -> None:
    """List the tenant's provisioning errors, filtered and sorted."""
    if property_value is not None and property_name is None:
        raise click.UsageError("--property-value requires --property-name")
    if max_results is not None and all_results:
        raise click.UsageError("--max-results and --all cannot be used together")
    limit = None if all_results else (max_results or queries.DEFAULT_LIMIT)
    with transaction() as session:
        rows = queries.list_provisioning_errors(
            session,
            require(session, tenant_name),
            category=error_category,
            property_name=property_name,
            property_value=property_value,
            search=search_string,
            sort_field=sort_field,
            sort_direction=sort_direction,
            limit=None if limit is None else limit + 1,  # one more tells us whether there are more
        )
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        click.echo(f"showing the first {limit} entries; use --max-results N or --all for more", err=True)
    if as_json:
        emit_json([row.as_json() for row in rows])
        return
    emit_table(
        [
            "ObjectId",
            "SourceAnchor",
            "ObjectType",
            "DisplayName",
            "UserPrincipalName",
            "PropertyName",
            "PropertyValue",
            "ConflictingObjectId",
            "TimeOccurred",
        ],
        (
            [
                r.object_id,
                r.source_anchor,
                r.object_type,
                r.display_name,
                r.user_principal_name,
                r.property_name,
                r.property_value,
                r.conflicting_object_id,
                r.time_occurred,
            ]
            for r in rows
        ),
        "no provisioning errors",
    )
