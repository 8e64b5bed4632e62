"""`syncguard post` and `syncguard failures list|retry`: what goes onto the queue, and what failed there."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

import click
from redis import Redis

from shared import queries
from shared.cli.root import cli, emit_json, emit_table, first_line, json_option, redact, tenant_option
from shared.core.timestamps import iso_utc
from shared.exports.failures import unattributed
from shared.exports.post_ledger import outcomes, wait_for
from shared.exports.producer import PostInterrupted, PostResult, post_exports
from shared.exports.producer import as_json as post_result_json
from shared.exports.retry import retry_failed_exports
from shared.settings import get_settings
from shared.store.engine import transaction
from shared.tenants.registry import (
    require,
)

Posted = TypeVar("Posted")

# --- post ---------------------------------------------------------------------------------------


def _post_payload(result: PostResult) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(post_result_json(result))
    return payload


def _left_out(payload: dict[str, Any]) -> str | None:
    """The rejections `rejected` does not list (beyond the first of each code), in words."""
    more = payload["rejectedCount"] - len(payload["rejected"])
    if more <= 0:
        return None
    counts = ", ".join(f"{code} {count}" for code, count in sorted(payload["rejectedByCode"].items()))
    return (
        f"... and {more} more rejected line(s) not listed ({payload['rejectedCount']} in all: {counts}); "
        "each is kept as a failed export ('syncguard failures list')"
    )


def _print_post(payload: dict[str, Any]) -> None:
    click.echo(f"enqueued {payload['enqueued']} export(s) in batch {payload['batch']}")
    for rejected in payload["rejected"]:
        click.echo(f"rejected line {rejected['line']}: {rejected['errorCode']}: {rejected['error']}")
    if (more := _left_out(payload)) is not None:
        click.echo(more)
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
    result = _explained(lambda: post_exports(source, settings), as_json)
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


def _explained(posting: Callable[[], Posted], as_json: bool) -> Posted:
    """Run a post (or a retry, which is one); when the broker fails part-way, show what was enqueued and
    say that posting again is safe."""
    try:
        return posting()
    except PostInterrupted as interrupted:
        done = interrupted.result
        if as_json:
            emit_json(_post_payload(done))
        else:
            _print_post(_post_payload(done))
        raise click.ClickException(
            f"could not reach the Celery broker at {redact(get_settings().broker_url)}: "
            f"{first_line(interrupted.cause)}; {done.enqueued} export(s) were enqueued before line "
            f"{interrupted.line} (batch {done.batch}), that line and the ones after it were not. Posting the "
            "same lines again is safe: an export already applied is skipped"
        ) from None


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
    assert tenant_name is not None  # the usage check above
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
                "firstFailed": iso_utc(f.first_failed),
                "lastFailed": iso_utc(f.last_failed),
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
    The retry is bound to the tenant: a kept message that names another tenant is refused again (and
    stays a failed export of this one), never sent.
    """
    settings = get_settings()
    with transaction() as session:
        require(session, tenant_name)
    retried = _explained(lambda: retry_failed_exports(settings, tenant_name, source_anchor=source_anchor), as_json)
    if source_anchor is not None and retried.found == 0:
        raise click.ClickException(f"tenant {tenant_name!r} has no failed export for sourceAnchor {source_anchor!r}")
    result = retried.sent
    payload = _post_payload(result)
    for listed, rejected in zip(result.rejected, payload["rejected"], strict=True):
        rejected["sourceAnchor"] = listed.source_anchor
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
        if (more := _left_out(payload)) is not None:
            click.echo(more)
        if "outcomes" in payload:
            counts = ", ".join(f"{status} {count}" for status, count in sorted(payload["outcomes"].items()))
            click.echo(f"outcomes: {counts or 'none'}")
    if not finished:
        raise click.ClickException(f"timed out after {timeout:g} s; are workers running?")
