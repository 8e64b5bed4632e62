"""The `syncguard` command line as docs/design.md §3 states it: commands, options, JSON shapes, exit codes.

Exit codes and JSON are checked on a real subprocess, the way outside tests drive it; the human
output and the finer filters use click's runner in-process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import delete

from shared.cli import cli
from shared.cli.root import redact
from shared.cli.text_tables import ELLIPSIS, render_table
from shared.exports.applier import ExportApplier
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import find
from tests.conftest import export_line
from tests.services import REPO, service_environment
from tests.shared.test_queries import (
    Conflicts,
    build_conflicts,
    insert_waiting_objects,
    object_id,
)

ERROR_KEYS = {
    "objectId",
    "sourceAnchor",
    "objectType",
    "displayName",
    "errorCategory",
    "propertyName",
    "propertyValue",
    "conflictingObjectId",
    "timeOccurred",
}
ENTRY_KEYS = {"errorCategory", "propertyName", "propertyValue", "conflictingObjectId", "timeOccurred"}
FAILURE_KEYS = {"sourceAnchor", "objectType", "errorCode", "message", "firstFailed", "lastFailed", "attempts"}


def syncguard(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as its own process with the test services' environment."""
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=service_environment(**env),
        check=False,  # the exit code is what the tests assert on
    )


def syncguard_json(*args: str) -> Any:
    done = syncguard(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def invoke(*args: str) -> Result:
    """In-process run, for the human output and the finer filters."""
    return CliRunner().invoke(cli, list(args), prog_name="syncguard")


def assert_clean_failure(done: subprocess.CompletedProcess[str], exit_code: int, *fragments: str) -> None:
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


@pytest.fixture
def conflicts(applier: ExportApplier, tenant: Tenant) -> Conflicts:
    return build_conflicts(applier, tenant)


@pytest.fixture
def new_tenant_name() -> Iterator[str]:
    """A name for a tenant the CLI itself creates; removed afterwards."""
    name = f"cli-{uuid.uuid4().hex[:10]}"
    yield name
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def errors_list(tenant: Tenant, *options: str) -> Result:
    return invoke("errors", "list", "--tenant", tenant.name, "--error-category", "PropertyConflict", *options)


def anchors(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["sourceAnchor"] for row in json.loads(result.stdout)]


# --- errors list: contract ----------------------------------------------------------------------


def test_errors_list_json_is_a_list_of_entries_with_exactly_the_contract_keys(conflicts: Conflicts) -> None:
    rows = syncguard_json("errors", "list", "--tenant", conflicts.tenant.name, "--error-category", "PropertyConflict")
    assert [set(row) for row in rows] == [ERROR_KEYS, ERROR_KEYS]
    bob = rows[0]
    assert bob["objectId"] == conflicts.ids["bob"]
    assert (bob["sourceAnchor"], bob["objectType"], bob["displayName"]) == ("bob", "User", "bob Young")
    assert (bob["errorCategory"], bob["propertyName"], bob["propertyValue"]) == (
        "PropertyConflict",
        "UserPrincipalName",
        "alice@contoso.com",
    )
    assert bob["conflictingObjectId"] == conflicts.ids["alice"]
    assert bob["timeOccurred"].endswith("Z")


def test_errors_list_names_the_current_holder_after_a_release(conflicts: Conflicts, applier: ExportApplier) -> None:
    name = conflicts.tenant.name
    applier.apply(export_line(name, "alice", sequence=2, userPrincipalName="alice.zed@contoso.com"))
    applier.release(name, "alice@contoso.com")
    rows = syncguard_json("errors", "list", "--tenant", name, "--error-category", "PropertyConflict")
    assert [(r["sourceAnchor"], r["conflictingObjectId"]) for r in rows] == [("carol", conflicts.ids["bob"])]


def test_error_category_is_required(conflicts: Conflicts) -> None:
    done = syncguard("errors", "list", "--tenant", conflicts.tenant.name)
    assert_clean_failure(done, 2, "--error-category")


def test_only_the_property_conflict_category_is_accepted(conflicts: Conflicts) -> None:
    done = syncguard("errors", "list", "--tenant", conflicts.tenant.name, "--error-category", "Other")
    assert_clean_failure(done, 2, "PropertyConflict")


def test_property_value_without_property_name_is_a_usage_error(conflicts: Conflicts) -> None:
    done = syncguard(
        "errors",
        "list",
        "--tenant",
        conflicts.tenant.name,
        "--error-category",
        "PropertyConflict",
        "--property-value",
        "alice@contoso.com",
    )
    assert_clean_failure(done, 2, "--property-value requires --property-name")


def test_max_results_and_all_cannot_be_combined(conflicts: Conflicts) -> None:
    done = syncguard(
        "errors",
        "list",
        "--tenant",
        conflicts.tenant.name,
        "--error-category",
        "PropertyConflict",
        "--max-results",
        "5",
        "--all",
    )
    assert_clean_failure(done, 2, "--max-results and --all")


@pytest.mark.parametrize(
    "option",
    [["--sort-field", "Surname"], ["--sort-direction", "Up"], ["--property-name", "Mail"], ["--max-results", "0"]],
)
def test_values_outside_the_contract_are_usage_errors(conflicts: Conflicts, option: list[str]) -> None:
    result = errors_list(conflicts.tenant, *option)
    assert result.exit_code == 2, result.output


# --- errors list: filters, sorting, limits ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ([], ["bob", "carol"]),
        (["--property-name", "UserPrincipalName"], ["bob"]),
        (["--property-name", "ProxyAddresses"], ["carol"]),
        (["--property-name", "ProxyAddresses", "--property-value", "SMTP:ALICE@contoso.com"], ["carol"]),
        (["--property-name", "UserPrincipalName", "--property-value", "Alice@Contoso.COM"], ["bob"]),
        (["--property-name", "UserPrincipalName", "--property-value", "carol@contoso.com"], []),
        (["--search-string", "xavier"], ["carol"]),
        (["--search-string", "ALICE@"], ["bob", "carol"]),
        (["--sort-field", "DisplayName", "--sort-direction", "Descending"], ["carol", "bob"]),
        (["--sort-field", "UserPrincipalName"], ["bob", "carol"]),
        (["--sort-direction", "Descending"], ["carol", "bob"]),
        (["--max-results", "1"], ["bob"]),
        (["--all"], ["bob", "carol"]),
    ],
)
def test_errors_list_options(conflicts: Conflicts, options: list[str], expected: list[str]) -> None:
    assert anchors(errors_list(conflicts.tenant, *options, "--json")) == expected


def test_default_limit_is_500_and_all_lifts_it(conflicts: Conflicts) -> None:
    insert_waiting_objects(conflicts.tenant, conflicts.ids["alice"], 500)
    limited = errors_list(conflicts.tenant, "--json")
    assert len(anchors(limited)) == 500
    assert "showing the first 500" in limited.stderr
    assert len(anchors(errors_list(conflicts.tenant, "--all", "--json"))) == 502
    assert len(anchors(errors_list(conflicts.tenant, "--max-results", "501", "--json"))) == 501


def test_errors_list_prints_an_aligned_table(conflicts: Conflicts) -> None:
    result = errors_list(conflicts.tenant)
    assert result.exit_code == 0, result.output
    header, rule, *rows = result.stdout.splitlines()
    assert header.split() == [
        "ObjectId",
        "SourceAnchor",
        "ObjectType",
        "DisplayName",
        "UserPrincipalName",
        "PropertyName",
        "PropertyValue",
        "ConflictingObjectId",
        "TimeOccurred",
    ]
    assert len(rows) == 2
    value_column = header.index("PropertyValue")
    assert [row[value_column:].split()[0] for row in rows] == ["alice@contoso.com", "smtp:Alice@Contoso.com"]
    assert set(rule) == {"-", " "}


def test_an_empty_result_says_so(tenant: Tenant) -> None:
    result = errors_list(tenant)
    assert result.exit_code == 0 and result.stdout.strip() == "no provisioning errors"
    assert json.loads(errors_list(tenant, "--json").stdout) == []


# --- unknown tenant and unreachable services ----------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["errors", "list", "--error-category", "PropertyConflict"],
        ["failures", "list"],
        ["object", "show", "--source-anchor", "a1"],
        ["object", "list"],
        ["features", "get"],
        ["features", "enable", "--feature", "DuplicateUPNResiliency"],
    ],
)
def test_an_unknown_tenant_exits_1_naming_it(command: list[str]) -> None:
    done = syncguard(*command, "--tenant", "no-such-tenant", "--json")
    assert_clean_failure(done, 1, "'no-such-tenant' does not exist")
    assert done.stdout == ""


def test_an_unreachable_database_is_named_without_its_password() -> None:
    done = syncguard(
        "object", "list", "--tenant", "contoso", DATABASE_URL="postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"
    )
    assert_clean_failure(done, 1, "could not use the database postgresql+psycopg://postgres:***@127.0.0.1:1/test")
    assert "s3cret" not in done.stderr


def test_a_database_without_the_schema_says_to_run_db_upgrade(tmp_path: Path) -> None:
    done = syncguard("object", "list", "--tenant", "contoso", DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert_clean_failure(done, 1, "has no syncguard schema yet; run 'syncguard db upgrade' first")


def test_an_unreachable_broker_is_reported_cleanly(tenant: Tenant) -> None:
    done = syncguard(
        "post",
        "-",
        stdin=export_line(tenant.name, "u1", userPrincipalName="u1@contoso.com"),
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
    )
    assert_clean_failure(done, 1, "could not reach the Celery broker at redis://127.0.0.1:1/0")


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("sqlite:///syncguard.sqlite3") == "sqlite:///syncguard.sqlite3"


# --- db, tenant, features -----------------------------------------------------------------------


def test_db_upgrade_is_safe_to_run_again() -> None:
    assert syncguard_json("db", "upgrade")["upgraded"] is True


def test_tenant_create_stores_domain_contacts_and_features(new_tenant_name: str) -> None:
    created = syncguard_json(
        "tenant",
        "create",
        new_tenant_name,
        "--initial-domain",
        "Fabrikam.onmicrosoft.com",
        "--contact",
        "ops@fabrikam.com",
        "--contact",
        "it@fabrikam.com",
        "--legacy-upn",
    )
    assert created == {
        "name": new_tenant_name,
        "initialDomain": "fabrikam.onmicrosoft.com",
        "technicalContacts": ["ops@fabrikam.com", "it@fabrikam.com"],
        "features": {"DuplicateUPNResiliency": False, "DuplicateProxyAddressResiliency": True},
    }
    with transaction() as session:
        stored = find(session, new_tenant_name)
        assert stored is not None and stored.upn_resiliency is False and stored.proxy_resiliency is True


def test_creating_a_tenant_twice_is_refused(new_tenant_name: str) -> None:
    first = syncguard("tenant", "create", new_tenant_name, "--initial-domain", "x.onmicrosoft.com")
    assert first.returncode == 0, first.stderr
    again = syncguard("tenant", "create", new_tenant_name, "--initial-domain", "x.onmicrosoft.com")
    assert_clean_failure(again, 1, f"tenant {new_tenant_name!r} already exists")


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--initial-domain", "not a domain"], "initial domain"),
        (["--initial-domain", "x.onmicrosoft.com", "--contact", "nobody"], "technical contact 'nobody'"),
    ],
)
def test_tenant_create_rejects_bad_input_with_the_reason(new_tenant_name: str, options: list[str], reason: str) -> None:
    assert_clean_failure(syncguard("tenant", "create", new_tenant_name, *options), 1, reason)


def test_tenant_create_needs_an_initial_domain(new_tenant_name: str) -> None:
    assert invoke("tenant", "create", new_tenant_name).exit_code == 2


def test_features_get_maps_each_feature_to_whether_it_is_enabled(make_tenant: Callable[..., Tenant]) -> None:
    legacy = make_tenant(proxy_resiliency=False)
    assert syncguard_json("features", "get", "--tenant", legacy.name) == {
        "DuplicateUPNResiliency": True,
        "DuplicateProxyAddressResiliency": False,
    }
    assert syncguard_json(
        "features", "get", "--tenant", legacy.name, "--feature", "DuplicateProxyAddressResiliency"
    ) == {"DuplicateProxyAddressResiliency": False}


def test_features_enable_turns_a_legacy_feature_on(make_tenant: Callable[..., Tenant]) -> None:
    legacy = make_tenant(upn_resiliency=False)
    enabled = syncguard_json("features", "enable", "--tenant", legacy.name, "--feature", "DuplicateUPNResiliency")
    assert enabled == {"DuplicateUPNResiliency": True, "DuplicateProxyAddressResiliency": True}
    again = invoke("features", "enable", "--tenant", legacy.name, "--feature", "DuplicateUPNResiliency")
    assert again.exit_code == 0 and "already enabled" in again.stdout


@pytest.mark.parametrize("upn_resiliency", [True, False])
def test_features_disable_is_always_refused(make_tenant: Callable[..., Tenant], upn_resiliency: bool) -> None:
    tenant = make_tenant(upn_resiliency=upn_resiliency)
    done = syncguard("features", "disable", "--tenant", tenant.name, "--feature", "DuplicateUPNResiliency")
    assert_clean_failure(done, 1, "DuplicateUPNResiliency")
    assert syncguard_json("features", "get", "--tenant", tenant.name)["DuplicateUPNResiliency"] is upn_resiliency


def test_an_unknown_feature_is_a_usage_error(tenant: Tenant) -> None:
    result = invoke("features", "get", "--tenant", tenant.name, "--feature", "DuplicateMailResiliency")
    assert result.exit_code == 2 and "DuplicateUPNResiliency" in result.stderr


# --- object and failures ------------------------------------------------------------------------


def test_object_show_json_gives_effective_values_and_entries(conflicts: Conflicts) -> None:
    bob = syncguard_json("object", "show", "--tenant", conflicts.tenant.name, "--source-anchor", "bob")
    assert set(bob) == {
        "objectId",
        "sourceAnchor",
        "objectType",
        "displayName",
        "userPrincipalName",
        "proxyAddresses",
        "dirSyncProvisioningErrors",
    }
    assert bob["objectId"] == conflicts.ids["bob"]
    assert bob["userPrincipalName"].startswith("alice+")
    assert bob["userPrincipalName"].endswith(f"@{conflicts.tenant.initial_domain}")
    [entry] = bob["dirSyncProvisioningErrors"]
    assert set(entry) == ENTRY_KEYS
    assert entry["conflictingObjectId"] == conflicts.ids["alice"] and entry["timeOccurred"].endswith("Z")


def test_object_show_of_a_missing_or_deleted_object_exits_1(conflicts: Conflicts, applier: ExportApplier) -> None:
    applier.apply(export_line(conflicts.tenant.name, "bob", sequence=2, operation="delete"))
    for anchor in ("bob", "nobody"):
        done = syncguard("object", "show", "--tenant", conflicts.tenant.name, "--source-anchor", anchor)
        assert_clean_failure(done, 1, f"no object with sourceAnchor {anchor!r}")


def test_object_show_prints_fields_and_entries(conflicts: Conflicts) -> None:
    result = invoke("object", "show", "--tenant", conflicts.tenant.name, "--source-anchor", "carol")
    assert result.exit_code == 0, result.output
    assert "userPrincipalName  carol@contoso.com" in result.stdout
    assert "proxyAddresses     SMTP:carol@contoso.com" in result.stdout
    assert f"smtp:Alice@Contoso.com  {conflicts.ids['alice']}" in result.stdout


def test_object_list_shows_live_objects_with_their_entry_counts(conflicts: Conflicts) -> None:
    listed = syncguard_json("object", "list", "--tenant", conflicts.tenant.name)
    assert [(o["sourceAnchor"], o["provisioningErrorCount"]) for o in listed] == [
        ("alice", 0),
        ("bob", 1),
        ("carol", 1),
    ]
    table = invoke("object", "list", "--tenant", conflicts.tenant.name).stdout.splitlines()
    assert table[0].split() == [
        "SourceAnchor",
        "ObjectType",
        "DisplayName",
        "UserPrincipalName",
        "ProxyAddresses",
        "Errors",
    ]
    assert table[2].split()[0] == "alice" and table[2].endswith("0")


def test_failures_list_json(applier: ExportApplier, tenant: Tenant) -> None:
    applier.apply(export_line(tenant.name, "g1", object_class="Group", userPrincipalName="g@contoso.com"))
    [failure] = syncguard_json("failures", "list", "--tenant", tenant.name)
    assert set(failure) == FAILURE_KEYS
    assert (failure["sourceAnchor"], failure["objectType"], failure["errorCode"], failure["attempts"]) == (
        "g1",
        "Group",
        "DataValidationFailed",
        1,
    )
    assert "only Users" in failure["message"]
    assert failure["firstFailed"].endswith("Z") and failure["lastFailed"].endswith("Z")


# --- post ---------------------------------------------------------------------------------------


@pytest.fixture
def not_json() -> Iterator[str]:
    """A line that is not JSON; its failure names no tenant, so it is removed here by its text."""
    line = f"this is not json {uuid.uuid4().hex}"
    yield line
    with transaction() as session:
        session.execute(delete(FailedExport).where(FailedExport.raw == line))


def test_post_reports_rejected_lines_without_failing(tenant: Tenant, not_json: str) -> None:
    lines = "\n".join([export_line(tenant.name, "no-upn", displayName="No UPN"), "", not_json])
    done = syncguard("post", "-", "--json", stdin=lines)
    assert done.returncode == 0, done.stderr
    posted = json.loads(done.stdout)
    assert posted["enqueued"] == 0
    assert [(r["line"], r["errorCode"]) for r in posted["rejected"]] == [
        (1, "DataValidationFailed"),
        (3, "DataValidationFailed"),
    ]
    assert "userPrincipalName" in posted["rejected"][0]["error"]
    assert [f["sourceAnchor"] for f in syncguard_json("failures", "list", "--tenant", tenant.name)] == ["no-upn"]


def test_post_wait_gives_up_after_the_timeout_with_exit_1(tenant: Tenant) -> None:
    # An in-memory broker nobody consumes: the export can never be done.
    line = export_line(tenant.name, "u1", userPrincipalName="u1@contoso.com")
    done = syncguard("post", "--wait", "--timeout", "0.5", stdin=line, CELERY_BROKER_URL="memory://")
    assert_clean_failure(done, 1, "timed out after 0.5 s with 0 of 1 export(s) done")
    assert "enqueued 1 export(s)" in done.stdout


@pytest.mark.integration
def test_post_wait_applies_the_valid_lines_and_files_the_invalid_one(
    workers: object, tenant: Tenant, tmp_path: Path
) -> None:
    exports = tmp_path / "exports.jsonl"
    exports.write_text(
        "\n".join(
            [
                export_line(tenant.name, "first", displayName="First", userPrincipalName="shared@contoso.com"),
                export_line(tenant.name, "broken", displayName="Broken", userPrincipalName="not a upn"),
                export_line(tenant.name, "second", displayName="Second", userPrincipalName="shared@contoso.com"),
            ]
        )
        + "\n"
    )

    done = syncguard("post", str(exports), "--wait", "--timeout", "120", "--json")
    assert done.returncode == 0, done.stderr
    posted = json.loads(done.stdout)
    assert posted["enqueued"] == 2
    assert [r["line"] for r in posted["rejected"]] == [2]
    assert posted["outcomes"] == {"applied": 2}

    [failure] = syncguard_json("failures", "list", "--tenant", tenant.name)
    assert (failure["sourceAnchor"], failure["errorCode"]) == ("broken", "DataValidationFailed")
    [entry] = syncguard_json("errors", "list", "--tenant", tenant.name, "--error-category", "PropertyConflict")
    holder = {"first": "second", "second": "first"}[entry["sourceAnchor"]]  # either worker may win the race
    assert entry["conflictingObjectId"] == object_id(tenant, holder)


def test_post_prints_counts_for_humans(tenant: Tenant) -> None:
    result = CliRunner().invoke(cli, ["post", "-"], input=export_line(tenant.name, "x", object_class="Robot"))
    assert result.exit_code == 0, result.output
    assert "enqueued 0 export(s)" in result.stdout
    assert "rejected line 1: DataValidationFailed:" in result.stdout


# --- tables -------------------------------------------------------------------------------------


def test_table_columns_are_as_wide_as_their_widest_cell() -> None:
    table = render_table(["Name", "N"], [["a", 1], ["abcdef", 22]])
    assert table.splitlines() == ["Name    N", "------  --", "a       1", "abcdef  22"]


def test_long_cells_are_cut_with_an_ellipsis_and_stay_on_one_line() -> None:
    table = render_table(["Message"], [["x" * 100], ["two\nlines"]], max_width=10)
    assert table.splitlines()[2] == "x" * 9 + ELLIPSIS
    assert table.splitlines()[3] == "two lines"


def test_lists_and_missing_values_render_readably() -> None:
    assert render_table(["A", "B"], [[["SMTP:a@x.com", "smtp:b@x.com"], None]]).splitlines()[2] == (
        "SMTP:a@x.com, smtp:b@x.com"
    )
