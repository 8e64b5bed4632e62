"""`syncguard tenant create` and `syncguard tenant token create|revoke|list`."""

from __future__ import annotations

from typing import Any

import click

from shared.cli.features import feature_map
from shared.cli.root import cli, emit_json, emit_table, json_option, tenant_option
from shared.core.timestamps import iso_utc
from shared.store.engine import transaction
from shared.tenants import tokens as api_tokens
from shared.tenants.registry import (
    TenantSpec,
    create_tenant,
    require,
)

# --- tenant -------------------------------------------------------------------------------------


@cli.group()
def tenant() -> None:
    """Tenants."""


@tenant.command("create")
@click.argument("name")
@click.option("--initial-domain", required=True, help="e.g. contoso.onmicrosoft.com; placeholder UPNs use it.")
@click.option("--contact", "contacts", multiple=True, help="Technical contact for the error report (repeatable).")
@click.option("--legacy-upn", is_flag=True, help="Leave DuplicateUPNResiliency off: UPN conflicts fail the export.")
@click.option("--legacy-proxy", is_flag=True, help="Leave DuplicateProxyAddressResiliency off.")
@json_option
def tenant_create(
    name: str, initial_domain: str, contacts: tuple[str, ...], legacy_upn: bool, legacy_proxy: bool, as_json: bool
) -> None:
    """Create tenant NAME; both resiliency features are on unless a --legacy flag says otherwise."""
    spec = TenantSpec(
        name=name,
        initial_domain=initial_domain,
        technical_contacts=contacts,
        upn_resiliency=not legacy_upn,
        proxy_resiliency=not legacy_proxy,
    )
    with transaction() as session:
        created = create_tenant(session, spec)
        payload: dict[str, Any] = {
            "name": created.name,
            "initialDomain": created.initial_domain,
            "technicalContacts": list(created.technical_contacts),
            "features": feature_map(created),
        }
    if as_json:
        emit_json(payload)
    else:
        enabled = ", ".join(f"{k}={'on' if v else 'off'}" for k, v in payload["features"].items())
        click.echo(f"created tenant {created.name!r} ({created.initial_domain}; {enabled})")


# --- tenant API tokens ----------------------------------------------------------------------------


@tenant.group("token")
def token_group() -> None:
    """API tokens for the HTTP service; each belongs to one tenant and is stored hashed."""


@token_group.command("create")
@tenant_option
@click.option("--name", help="What the token is for, e.g. the producer's host name.")
@json_option
def token_create(tenant_name: str, name: str | None, as_json: bool) -> None:
    """Issue a token and print its secret, once: it cannot be shown again."""
    with transaction() as session:
        issued = api_tokens.issue_token(session, require(session, tenant_name), name)
    if as_json:
        emit_json({"tokenId": issued.token_id, "tenant": issued.tenant, "name": issued.name, "secret": issued.secret})
    else:
        click.echo(f"token {issued.token_id} for tenant {issued.tenant!r}; keep the secret now, it is not shown again:")
        click.echo(issued.secret)


@token_group.command("revoke")
@tenant_option
@click.option("--token-id", required=True, type=click.IntRange(min=1), help="The id 'token create' printed.")
@json_option
def token_revoke(tenant_name: str, token_id: int, as_json: bool) -> None:
    """Revoke a token for good; requests with it get 401 from then on."""
    with transaction() as session:
        info = api_tokens.revoke_token(session, require(session, tenant_name), token_id)
    if as_json:
        emit_json({"tokenId": info.token_id, "revokedAt": iso_utc(info.revoked_at)})
    else:
        click.echo(f"token {info.token_id} of tenant {tenant_name!r} is revoked")


@token_group.command("list")
@tenant_option
@json_option
def token_list(tenant_name: str, as_json: bool) -> None:
    """List the tenant's tokens (never their secrets)."""
    with transaction() as session:
        tokens = api_tokens.list_tokens(session, require(session, tenant_name))
    if as_json:
        emit_json(
            [
                {
                    "tokenId": t.token_id,
                    "name": t.name,
                    "createdAt": iso_utc(t.created_at),
                    "revokedAt": iso_utc(t.revoked_at),
                }
                for t in tokens
            ]
        )
        return
    emit_table(
        ["TokenId", "Name", "CreatedAt", "RevokedAt"],
        ([t.token_id, t.name, t.created_at, t.revoked_at] for t in tokens),
        "no API tokens",
    )
