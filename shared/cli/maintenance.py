"""`syncguard release run` and `syncguard report send`: the same code celery-beat runs, run now."""

from __future__ import annotations

import click
from redis import Redis

from shared.cli.root import cli, emit_json, json_option
from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.release.sweep import sweep
from shared.reports.sending import ReportsNotSent, send_error_reports
from shared.settings import get_settings
from shared.store.engine import transaction
from shared.tenants.registry import (
    require,
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
    """Send the error reports now: new quarantines once, failing exports every time.

    When a report cannot be sent, the ones that went out are still printed, then the reason (exit 1).
    """
    try:
        sent, failed = send_error_reports(get_settings(), _lock_manager(), tenant_name), None
    except ReportsNotSent as exc:
        sent, failed = exc.sent, exc
    if as_json:
        emit_json(
            [
                {
                    "tenant": o.tenant,
                    "conflicts": o.conflicts,
                    "conflictsWaiting": o.conflicts_waiting,
                    "failures": o.failures,
                    "deliveredTo": o.delivered_to,
                }
                for o in sent
            ]
        )
    else:
        for outcome in sent:
            click.echo(outcome.describe())
        if not sent and failed is None:
            click.echo("no tenants")
    if failed is not None:
        raise click.ClickException(str(failed))
