"""The `syncguard` command group and what every command shares: options, output, and errors as one sentence.

Exit codes (docs/design.md, the CLI contract): 0 success, 2 usage error (click's own), 1 anything else
with the reason on stderr and never a traceback: every failure an operator can meet (unknown tenant, a
database, Redis or broker that cannot be reached) is turned into one sentence that says what went wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import click
from kombu.exceptions import OperationalError as BrokerUnreachable
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError as DatabaseUnreachable

from shared.cli.text_tables import render_table
from shared.settings import get_settings
from shared.tenants.registry import (
    Feature,
    TenantError,
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


def first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0].strip() if text else "no reason given"


def _database_problem(exc: DBAPIError) -> str:
    url = redact(get_settings().database_url)
    if getattr(exc.orig, "sqlstate", None) == _UNDEFINED_TABLE or "no such table" in str(exc.orig):
        return f"the database {url} has no syncguard schema yet; run 'syncguard db upgrade' first"
    if isinstance(exc, DatabaseUnreachable):
        return f"could not use the database {url}: {first_line(exc.orig)}"
    return f"the database {url} refused the request: {first_line(exc.orig)}"


def describe(exc: Exception) -> str:
    """One sentence for the operator: what failed, where, and (when we know) what to do."""
    if isinstance(exc, TenantError):
        return str(exc)
    if isinstance(exc, DBAPIError):
        return _database_problem(exc)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"could not reach Redis at {redact(get_settings().redis_url)}: {first_line(exc)}"
    if isinstance(exc, BrokerUnreachable):
        return f"could not reach the Celery broker at {redact(get_settings().broker_url)}: {first_line(exc)}"
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
