"""The `syncguard` command line (DESIGN §3, a binding contract).

Exit codes: 0 success, 2 usage error (click's own), 1 anything else with the reason on stderr and
never a traceback: every failure an operator can meet (unknown tenant, a database, Redis or broker
that cannot be reached) is turned into one sentence that says what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TextIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from kombu.exceptions import OperationalError as BrokerUnreachable
from pydantic import ValidationError
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as DatabaseUnreachable

from shared import api_tokens, queries
from shared.apply import ExportApplier
from shared.db import transaction
from shared.failures import retry_candidates, unattributed
from shared.locks import LockManager
from shared.migrate import upgrade
from shared.producer import PostInterrupted, PostResult, post_exports
from shared.producer import as_json as post_result_json
from shared.progress import outcomes, wait_for
from shared.release import sweep
from shared.reporting import send_error_reports
from shared.settings import get_settings
from shared.tables import render_table
from shared.tenants import (
    Feature,
    TenantError,
    TenantSpec,
    create_tenant,
    enable_feature,
    features,
    refuse_disable,
    require,
)

F = TypeVar("F", bound=Callable[..., Any])
FEATURE_NAMES = [f.value for f in Feature]
_UNDEFINED_TABLE = "42P01"


def redact(url: str) -> str:
    """A URL fit for an error message: the password never reaches a terminal or a log."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0].strip() if text else "no reason given"


def _database_problem(exc: DBAPIError) -> str:
    url = redact(get_settings().database_url)
    if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE or "no such table" in str(exc.orig):
        return f"the database {url} has no syncguard schema yet; run 'syncguard db upgrade' first"
    if isinstance(exc, DatabaseUnreachable):
        return f"could not use the database {url}: {_first_line(exc.orig)}"
    return f"the database {url} refused the request: {_first_line(exc.orig)}"


def describe(exc: Exception) -> str:
    """One sentence for the operator: what failed, where, and (when we know) what to do."""
    if isinstance(exc, TenantError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        return _database_problem(exc)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"could not reach Redis at {redact(get_settings().redis_url)}: {_first_line(exc)}"
    if isinstance(exc, BrokerUnreachable):
        return f"could not reach the Celery broker at {redact(get_settings().broker_url)}: {_first_line(exc)}"
    if isinstance(exc, ValidationError):
        return f"invalid settings in the environment: {exc}"
    return f"unexpected {type(exc).__name__}: {exc}"


class SyncguardGroup(click.Group):
    """Turns every non-click error into a `ClickException`: exit 1, reason on stderr, no traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            raise click.ClickException(describe(exc)) from None


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(command)


def tenant_option(command: F) -> F:
    return click.option("--tenant", "tenant_name", required=True, help="Tenant name, e.g. contoso.")(command)


def emit_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False))


def emit_table(headers: list[str], rows: Iterable[list[Any]], empty: str) -> None:
    rows = list(rows)
    click.echo(render_table(headers, rows) if rows else empty)


@click.group(cls=SyncguardGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Apply directory-sync exports with duplicate attribute resiliency, and inspect the result."""


# --- db -----------------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@json_option
def db_upgrade(as_json: bool) -> None:
    """Create or migrate the schema to the latest version."""
    url = get_settings().database_url
    upgrade(url)
    if as_json:
        emit_json({"database": redact(url), "upgraded": True})
    else:
        click.echo(f"database {redact(url)} is at the latest schema")


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
        payload = {
            "name": created.name,
            "initialDomain": created.initial_domain,
            "technicalContacts": list(created.technical_contacts),
            "features": _feature_map(created),
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
        emit_json({"tokenId": info.token_id, "revokedAt": queries.iso_utc(info.revoked_at)})
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
                    "createdAt": queries.iso_utc(t.created_at),
                    "revokedAt": queries.iso_utc(t.revoked_at),
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


# --- features -----------------------------------------------------------------------------------


def _feature_map(tenant_row: Any) -> dict[str, bool]:
    return {feature.value: enabled for feature, enabled in features(tenant_row).items()}


def feature_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--feature",
        "feature_name",
        required=required,
        type=click.Choice(FEATURE_NAMES),
        help="The feature.",
    )


@cli.group("features")
def features_group() -> None:
    """The tenant's resiliency features; enabled is for good."""


def _print_features(mapping: dict[str, bool], as_json: bool) -> None:
    if as_json:
        emit_json(mapping)
    else:
        emit_table(["Feature", "Enabled"], ([name, on] for name, on in mapping.items()), "no features")


@features_group.command("get")
@tenant_option
@feature_option(required=False)
@json_option
def features_get(tenant_name: str, feature_name: str | None, as_json: bool) -> None:
    """Show whether each feature (or the one asked for) is enabled."""
    with transaction() as session:
        mapping = _feature_map(require(session, tenant_name))
    if feature_name is not None:
        mapping = {feature_name: mapping[feature_name]}
    _print_features(mapping, as_json)


@features_group.command("enable")
@tenant_option
@feature_option(required=True)
@json_option
def features_enable(tenant_name: str, feature_name: str, as_json: bool) -> None:
    """Enable a feature. This cannot be undone."""
    with transaction() as session:
        row = require(session, tenant_name)
        changed = enable_feature(session, row, Feature(feature_name))
        mapping = _feature_map(row)
    if as_json:
        emit_json(mapping)
    elif changed:
        click.echo(f"{feature_name} is now enabled for tenant {tenant_name!r}; it can never be disabled")
    else:
        click.echo(f"{feature_name} was already enabled for tenant {tenant_name!r}")


@features_group.command("disable")
@tenant_option
@feature_option(required=True)
@json_option
def features_disable(tenant_name: str, feature_name: str, as_json: bool) -> None:
    """Always refused: a resiliency feature, once enabled, stays enabled."""
    with transaction() as session:
        refuse_disable(require(session, tenant_name), Feature(feature_name))


# --- post ---------------------------------------------------------------------------------------


def _post_payload(result: PostResult) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(post_result_json(result))
    return payload


def _print_post(payload: dict[str, Any]) -> None:
    click.echo(f"enqueued {payload['enqueued']} export(s) in batch {payload['batch']}")
    for rejected in payload["rejected"]:
        click.echo(f"rejected line {rejected['line']}: {rejected['errorCode']}: {rejected['error']}")
    if "outcomes" in payload:
        counts = ", ".join(f"{status} {count}" for status, count in sorted(payload["outcomes"].items()))
        click.echo(f"outcomes: {counts or 'none'}")


@cli.command("post")
@click.argument("source", default="-", type=click.File("r", encoding="utf-8", errors="replace"))
@click.option("--wait", is_flag=True, help="Wait until every enqueued export has been applied or has failed.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=600, show_default=True, help="Seconds --wait waits at most."
)
@json_option
def post(source: TextIO, wait: bool, timeout: float, as_json: bool) -> None:
    """Enqueue the JSON-lines exports in SOURCE (a file, or - for stdin); a bad line never stops the others."""
    settings = get_settings()
    result = _post_or_explain(source, as_json)
    payload = _post_payload(result)
    finished = True
    if wait:
        redis = Redis.from_url(settings.redis_url)
        finished = wait_for(redis, result.batch, result.enqueued, timeout)
        payload["outcomes"] = outcomes(redis, result.batch)
    if as_json:
        emit_json(payload)
    else:
        _print_post(payload)
    if not finished:
        done = sum(payload["outcomes"].values())
        raise click.ClickException(
            f"timed out after {timeout:g} s with {done} of {result.enqueued} export(s) done; "
            "are workers running ('celery -A workers.app worker')?"
        )


def _post_or_explain(lines: Iterable[str], as_json: bool) -> PostResult:
    """Post; when the broker fails part-way, show what was enqueued and say that posting again is safe."""
    try:
        return post_exports(lines, get_settings())
    except PostInterrupted as interrupted:
        done = interrupted.result
        if as_json:
            emit_json(_post_payload(done))
        else:
            _print_post(_post_payload(done))
        raise click.ClickException(
            f"could not reach the Celery broker at {redact(get_settings().broker_url)}: "
            f"{_first_line(interrupted.cause)}; {done.enqueued} export(s) were enqueued before line "
            f"{interrupted.line} (batch {done.batch}), that line and the ones after it were not. Posting the "
            "same lines again is safe: an export already applied is skipped"
        ) from None


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


# --- failures -----------------------------------------------------------------------------------


@cli.group("failures")
def failures_group() -> None:
    """Failed exports (invalid, or refused in legacy mode)."""


@failures_group.command("list")
@click.option("--tenant", "tenant_name", help="Tenant name, e.g. contoso.")
@click.option(
    "--unattributed",
    "unattributed_only",
    is_flag=True,
    help="Instead: failures of no tenant (not even JSON, or an unknown tenant).",
)
@json_option
def failures_list(tenant_name: str | None, unattributed_only: bool, as_json: bool) -> None:
    """List the tenant's failed exports (dead letters included), most recent first."""
    if (tenant_name is None) == (not unattributed_only):
        raise click.UsageError("give either --tenant T or --unattributed")
    if unattributed_only:
        _list_unattributed(as_json)
        return
    with transaction() as session:
        rows = queries.list_failures(session, require(session, tenant_name))
    if as_json:
        emit_json([row.as_json() for row in rows])
        return
    emit_table(
        ["SourceAnchor", "ObjectType", "ErrorCode", "Message", "FirstFailed", "LastFailed", "Attempts"],
        (
            [r.source_anchor, r.object_type, r.error_code, r.message, r.first_failed, r.last_failed, r.attempts]
            for r in rows
        ),
        "no failed exports",
    )


def _list_unattributed(as_json: bool) -> None:
    with transaction() as session:
        rows = [
            {
                "tenant": f.tenant,
                "sourceAnchor": f.source_anchor,
                "objectType": f.object_class,
                "errorCode": f.error_code,
                "message": f.message,
                "firstFailed": queries.iso_utc(f.first_failed),
                "lastFailed": queries.iso_utc(f.last_failed),
                "attempts": f.attempts,
            }
            for f in unattributed(session)
        ]
    if as_json:
        emit_json(rows)
        return
    emit_table(
        ["Tenant", "SourceAnchor", "ErrorCode", "Message", "LastFailed", "Attempts"],
        ([r["tenant"], r["sourceAnchor"], r["errorCode"], r["message"], r["lastFailed"], r["attempts"]] for r in rows),
        "no unattributed failures",
    )


@failures_group.command("retry")
@tenant_option
@click.option("--source-anchor", help="Only this object's failed export.")
@click.option("--wait", is_flag=True, help="Wait until every re-sent export has been applied or has failed.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=600, show_default=True, help="Seconds --wait waits at most."
)
@json_option
def failures_retry(tenant_name: str, source_anchor: str | None, wait: bool, timeout: float, as_json: bool) -> None:
    """Send the tenant's failed exports again, as stored; each is validated and applied anew.

    The entry stays until an export of the object succeeds; one failing again counts another attempt.
    """
    with transaction() as session:
        require(session, tenant_name)
        anchors_and_lines = [
            (f.source_anchor, f.raw or "") for f in retry_candidates(session, tenant_name, source_anchor)
        ]
    if source_anchor is not None and not anchors_and_lines:
        raise click.ClickException(f"tenant {tenant_name!r} has no failed export for sourceAnchor {source_anchor!r}")
    result = _post_or_explain([line for _, line in anchors_and_lines], as_json)
    payload = _post_payload(result)
    for rejected in payload["rejected"]:
        rejected["sourceAnchor"] = anchors_and_lines[rejected["line"] - 1][0]
    finished = True
    if wait:
        redis = Redis.from_url(get_settings().redis_url)
        finished = wait_for(redis, result.batch, result.enqueued, timeout)
        payload["outcomes"] = outcomes(redis, result.batch)
    if as_json:
        emit_json(payload)
    else:
        click.echo(f"re-sent {result.enqueued} failed export(s) of tenant {tenant_name!r} in batch {result.batch}")
        for rejected in payload["rejected"]:
            click.echo(f"still invalid: {rejected['sourceAnchor']}: {rejected['errorCode']}: {rejected['error']}")
        if "outcomes" in payload:
            counts = ", ".join(f"{status} {count}" for status, count in sorted(payload["outcomes"].items()))
            click.echo(f"outcomes: {counts or 'none'}")
    if not finished:
        raise click.ClickException(f"timed out after {timeout:g} s; are workers running?")


# --- object -------------------------------------------------------------------------------------


@cli.group("object")
def object_group() -> None:
    """Directory objects as the cloud holds them."""


@object_group.command("show")
@tenant_option
@click.option("--source-anchor", required=True, help="The object's on-premises immutable id.")
@json_option
def object_show(tenant_name: str, source_anchor: str, as_json: bool) -> None:
    """Show one object's effective UPN and proxy addresses and its provisioning errors."""
    with transaction() as session:
        detail = queries.show_object(session, require(session, tenant_name), source_anchor)
    if detail is None:
        raise click.ClickException(f"tenant {tenant_name!r} has no object with sourceAnchor {source_anchor!r}")
    if as_json:
        emit_json(detail.as_json())
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


# --- release and report (the same code beat runs) -------------------------------------------------


def _lock_manager() -> LockManager:
    settings = get_settings()
    return LockManager(Redis.from_url(settings.redis_url), ttl_ms=settings.lock_ttl_ms)


@cli.group("release")
def release_group() -> None:
    """Give quarantined values back to the objects waiting for them."""


@release_group.command("run")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@json_option
def release_run(tenant_name: str | None, as_json: bool) -> None:
    """Run the release sweep now: every free value goes to its earliest waiter."""
    settings = get_settings()
    if tenant_name:
        with transaction() as session:
            require(session, tenant_name)
    result = sweep(
        ExportApplier(_lock_manager(), settings),
        tenant=tenant_name,
        batch_size=settings.sweep_batch_size,
        concurrency=settings.sweep_concurrency,
    )
    if as_json:
        emit_json(
            {
                "examined": result.examined,
                "released": result.released,
                "batches": result.batches,
                "seconds": round(result.seconds, 3),
                "releasedByTenant": result.released_by_tenant,
            }
        )
        return
    click.echo(
        f"released {result.released} value(s); {result.examined} free value(s) had waiters; "
        f"{result.batches} batch(es) in {result.seconds:.2f} s"
    )
    for name, count in sorted(result.released_by_tenant.items()):
        click.echo(f"  {name}: {count}")


@cli.group("report")
def report_group() -> None:
    """The error-report email to each tenant's technical contacts."""


@report_group.command("send")
@click.option("--tenant", "tenant_name", help="Only this tenant (default: every tenant).")
@json_option
def report_send(tenant_name: str | None, as_json: bool) -> None:
    """Send the error reports now: new quarantines once, failing exports every time."""
    sent = send_error_reports(get_settings(), _lock_manager(), tenant_name)
    if as_json:
        emit_json(
            [
                {"tenant": o.tenant, "conflicts": o.conflicts, "failures": o.failures, "deliveredTo": o.delivered_to}
                for o in sent
            ]
        )
        return
    for outcome in sent:
        click.echo(outcome.describe())
    if not sent:
        click.echo("no tenants")


def main() -> None:
    cli(prog_name="syncguard")


if __name__ == "__main__":
    main()
