"""`syncguard features get|enable|disable`: enabling is for good, disabling is always refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from shared.cli.root import FEATURE_NAMES, F, cli, emit_json, emit_table, json_option, tenant_option
from shared.store.engine import transaction
from shared.tenants.registry import (
    Feature,
    enable_feature,
    features,
    refuse_disable,
    require,
)

# --- features -----------------------------------------------------------------------------------


def feature_map(tenant_row: Any) -> dict[str, bool]:
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
        mapping = feature_map(require(session, tenant_name))
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
        mapping = feature_map(row)
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
