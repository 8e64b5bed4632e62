"""`syncguard db upgrade`."""

from __future__ import annotations

import click

from shared.cli.root import cli, emit_json, json_option, redact
from shared.settings import get_settings
from shared.store.migrate import upgrade

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
