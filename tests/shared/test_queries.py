"""Read-side queries on real PostgreSQL, with data made by the real apply code (docs/design.md §1, §3)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import select

from shared.core.timestamps import iso_utc
from shared.exports.applier import ExportApplier
from shared.queries.error_search import list_provisioning_errors
from shared.queries.failures import list_failures
from shared.queries.objects import list_objects, show_object
from shared.queries.options import DEFAULT_LIMIT, PROPERTY_CONFLICT
from shared.queries.provisioning_errors import property_value_key
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, ProvisioningError, Tenant, utcnow
from tests.conftest import export_line


@dataclass(frozen=True)
class Conflicts:
    """Alice holds alice@contoso.com; Bob wants it as his UPN, Carol as a proxy address."""

    tenant: Tenant
    ids: dict[str, str]


def object_id(tenant: Tenant, anchor: str) -> str:
    with transaction() as session:
        return session.scalars(
            select(DirectoryObject.object_id).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor == anchor
            )
        ).one()


def build_conflicts(applier: ExportApplier, tenant: Tenant) -> Conflicts:
    """Three users, applied in this order, so Bob's entry is older than Carol's."""
    exports = [
        export_line(
            tenant.name,
            "alice",
            displayName="Alice Zed",
            userPrincipalName="alice@contoso.com",
            proxyAddresses=["SMTP:alice@contoso.com"],
        ),
        export_line(tenant.name, "bob", displayName="bob Young", userPrincipalName="alice@contoso.com"),
        export_line(
            tenant.name,
            "carol",
            displayName="Carol Xavier",
            userPrincipalName="carol@contoso.com",
            proxyAddresses=["SMTP:carol@contoso.com", "smtp:Alice@Contoso.com"],
        ),
    ]
    for line in exports:
        assert applier.apply(line).status == "applied"
    return Conflicts(tenant, {anchor: object_id(tenant, anchor) for anchor in ("alice", "bob", "carol")})


def insert_waiting_objects(tenant: Tenant, holder_object_id: str, count: int) -> None:
    """Many entries at once, written straight to the tables: only the read side is under test here."""
    now = utcnow()
    with transaction() as session:
        for n in range(count):
            obj = DirectoryObject(
                tenant_id=tenant.id,
                source_anchor=f"bulk-{n:04d}",
                object_id=str(uuid.uuid4()),
                object_class="User",
                display_name=f"Bulk {n:04d}",
                wanted_upn="shared@contoso.com",
                upn=f"shared+{n:04d}@{tenant.initial_domain}",
                wanted_proxy_addresses=[],
                proxy_addresses=[],
                attributes={},
                last_sequence=1,
                deleted=False,
            )
            session.add(obj)
            session.flush()
            session.add(
                ProvisioningError(
                    tenant_id=tenant.id,
                    object_pk=obj.id,
                    key="shared@contoso.com",
                    property_name="UserPrincipalName",
                    property_value="shared@contoso.com",
                    conflicting_object_id=holder_object_id,
                    occurred_at=now + timedelta(milliseconds=n),
                )
            )


@pytest.fixture
def conflicts(applier: ExportApplier, tenant: Tenant) -> Conflicts:
    return build_conflicts(applier, tenant)


def errors(tenant: Tenant, **filters: object) -> list[tuple[str, str]]:
    """(sourceAnchor, propertyName) of each entry the query returns, in its order."""
    filters.setdefault("category", PROPERTY_CONFLICT)
    with transaction() as session:
        rows = list_provisioning_errors(session, tenant, **filters)  # type: ignore[arg-type]
    return [(row.source_anchor, row.property_name) for row in rows]


BOB = ("bob", "UserPrincipalName")
CAROL = ("carol", "ProxyAddresses")


# --- the entries and who they name -------------------------------------------------------------


def test_each_waiter_has_one_entry_naming_the_holder_and_the_holder_has_none(conflicts: Conflicts) -> None:
    with transaction() as session:
        rows = list_provisioning_errors(session, conflicts.tenant, category=PROPERTY_CONFLICT)
    assert [(r.source_anchor, r.property_name, r.property_value) for r in rows] == [
        ("bob", "UserPrincipalName", "alice@contoso.com"),
        ("carol", "ProxyAddresses", "smtp:Alice@Contoso.com"),
    ]
    assert {r.conflicting_object_id for r in rows} == {conflicts.ids["alice"]}
    assert rows[0].object_id == conflicts.ids["bob"] and rows[0].object_type == "User"
    assert rows[0].display_name == "bob Young" and rows[0].error_category == "PropertyConflict"
    assert rows[0].time_occurred < rows[1].time_occurred


def test_conflicting_object_id_names_the_current_holder_after_a_release(
    conflicts: Conflicts, applier: ExportApplier
) -> None:
    tenant = conflicts.tenant
    freed = applier.apply(
        export_line(
            tenant.name, "alice", sequence=2, displayName="Alice Zed", userPrincipalName="alice.zed@contoso.com"
        )
    )
    assert freed.freed_with_waiters == ("alice@contoso.com",)
    assert applier.release(tenant.name, "alice@contoso.com").status == "released"

    with transaction() as session:
        rows = list_provisioning_errors(session, tenant, category=PROPERTY_CONFLICT)
    assert [(r.source_anchor, r.conflicting_object_id) for r in rows] == [("carol", conflicts.ids["bob"])], (
        "Bob, the earliest waiter, took the value; Carol's entry must name him, not Alice"
    )


def test_conflicting_object_id_falls_back_to_the_stored_holder_while_nobody_holds_the_value(
    conflicts: Conflicts, applier: ExportApplier
) -> None:
    tenant = conflicts.tenant
    applier.apply(export_line(tenant.name, "alice", sequence=2, operation="delete"))  # no release run yet

    with transaction() as session:
        rows = list_provisioning_errors(session, tenant, category=PROPERTY_CONFLICT)
    assert [(r.source_anchor, r.conflicting_object_id) for r in rows] == [
        ("bob", conflicts.ids["alice"]),
        ("carol", conflicts.ids["alice"]),
    ]


def test_another_tenants_entries_are_never_listed(
    conflicts: Conflicts, make_tenant: Callable[..., Tenant], applier: ExportApplier
) -> None:
    other = make_tenant()
    build_conflicts(applier, other)
    with transaction() as session:
        rows = list_provisioning_errors(session, conflicts.tenant, category=PROPERTY_CONFLICT)
    assert {r.object_id for r in rows} == {conflicts.ids["bob"], conflicts.ids["carol"]}


def test_an_unknown_category_matches_nothing(conflicts: Conflicts) -> None:
    assert errors(conflicts.tenant, category="SomethingElse") == []


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("property_name", "expected"),
    [
        ("UserPrincipalName", [BOB]),
        ("ProxyAddresses", [CAROL]),
        (None, [BOB, CAROL]),
    ],
)
def test_property_name_filter(conflicts: Conflicts, property_name: str | None, expected: list[tuple[str, str]]) -> None:
    assert errors(conflicts.tenant, property_name=property_name) == expected


@pytest.mark.parametrize(
    ("property_name", "value", "expected"),
    [
        ("UserPrincipalName", "ALICE@CONTOSO.COM", [BOB]),
        ("ProxyAddresses", "alice@contoso.com", [CAROL]),
        ("ProxyAddresses", "SMTP:alice@CONTOSO.com", [CAROL]),
        ("ProxyAddresses", "smtp:Alice@Contoso.com", [CAROL]),
        ("ProxyAddresses", "X500:alice@contoso.com", []),
        ("UserPrincipalName", "carol@contoso.com", []),
    ],
)
def test_property_value_matches_the_entrys_value_case_insensitively(
    conflicts: Conflicts, property_name: str, value: str, expected: list[tuple[str, str]]
) -> None:
    assert errors(conflicts.tenant, property_name=property_name, property_value=value) == expected


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("Bob@Contoso.com", "bob@contoso.com"),
        ("smtp:Bob@Contoso.com", "bob@contoso.com"),
        ("SMTP:BOB@contoso.com", "bob@contoso.com"),
        ("SIP:bob@contoso.com", None),
    ],
)
def test_property_value_key_strips_the_smtp_prefix_and_ignores_other_proxy_types(value: str, key: str | None) -> None:
    assert property_value_key(value) == key


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("YOUNG", [BOB]),  # display name
        ("onmicrosoft", [BOB]),  # Bob's effective UPN is a placeholder on the initial domain
        ("carol@", [CAROL]),  # Carol's effective UPN
        ("SMTP:ALICE", [CAROL]),  # the value as the export gave it
        ("alice@contoso", [BOB, CAROL]),
        ("nobody", []),
    ],
)
def test_search_matches_display_name_upn_and_value_case_insensitively(
    conflicts: Conflicts, search: str, expected: list[tuple[str, str]]
) -> None:
    assert errors(conflicts.tenant, search=search) == expected


def test_search_treats_like_wildcards_as_plain_characters(applier: ExportApplier, tenant: Tenant) -> None:
    build_conflicts(applier, tenant)
    applier.apply(
        export_line(tenant.name, "dave", displayName="Dave 100%_Sales", userPrincipalName="alice@contoso.com")
    )
    assert errors(tenant, search="%") == [("dave", "UserPrincipalName")]
    assert errors(tenant, search="0%_s") == [("dave", "UserPrincipalName")]
    assert errors(tenant, search="_") == [("dave", "UserPrincipalName")]


# --- sorting and limits -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "direction", "expected"),
    [
        ("None", "Ascending", [BOB, CAROL]),
        ("None", "Descending", [CAROL, BOB]),
        ("DisplayName", "Ascending", [BOB, CAROL]),  # "bob Young" < "Carol Xavier" ignoring case
        ("DisplayName", "Descending", [CAROL, BOB]),
        ("UserPrincipalName", "Ascending", [BOB, CAROL]),  # "alice+NNNN@..." < "carol@..."
        ("UserPrincipalName", "Descending", [CAROL, BOB]),
    ],
)
def test_sorting(conflicts: Conflicts, field: str, direction: str, expected: list[tuple[str, str]]) -> None:
    assert errors(conflicts.tenant, sort_field=field, sort_direction=direction) == expected


def test_display_name_sort_differs_from_time_order(applier: ExportApplier, tenant: Tenant) -> None:
    build_conflicts(applier, tenant)
    applier.apply(export_line(tenant.name, "aaron", displayName="Aaron Early", userPrincipalName="alice@contoso.com"))
    by_time = [anchor for anchor, _ in errors(tenant)]
    by_name = [anchor for anchor, _ in errors(tenant, sort_field="DisplayName")]
    assert by_time == ["bob", "carol", "aaron"]
    assert by_name == ["aaron", "bob", "carol"]


def test_limit_keeps_the_first_entries_in_sort_order(conflicts: Conflicts) -> None:
    assert errors(conflicts.tenant, limit=1) == [BOB]
    assert errors(conflicts.tenant, limit=1, sort_direction="Descending") == [CAROL]


def test_default_limit_is_500_and_none_means_all(conflicts: Conflicts) -> None:
    insert_waiting_objects(conflicts.tenant, conflicts.ids["alice"], DEFAULT_LIMIT)
    assert DEFAULT_LIMIT == 500
    assert len(errors(conflicts.tenant)) == 500
    assert len(errors(conflicts.tenant, limit=None)) == 502


# --- failures, objects --------------------------------------------------------------------------


def test_failures_are_listed_newest_first_with_their_error_and_attempts(
    applier: ExportApplier, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(upn_resiliency=False)
    applier.apply(export_line(tenant.name, "nameless", displayName="No UPN"))
    applier.apply(export_line(tenant.name, "holder", userPrincipalName="bob@contoso.com"))
    applier.apply(export_line(tenant.name, "dup", userPrincipalName="bob@contoso.com"))
    applier.apply(export_line(tenant.name, "dup", sequence=2, userPrincipalName="bob@contoso.com"))

    with transaction() as session:
        rows = list_failures(session, tenant)
    assert [(r.source_anchor, r.object_type, r.error_code, r.attempts) for r in rows] == [
        ("dup", "User", "AttributeValueMustBeUnique", 2),
        ("nameless", "User", "DataValidationFailed", 1),
    ]
    assert "bob@contoso.com" in rows[0].message
    assert rows[0].first_failed <= rows[0].last_failed
    assert set(rows[0].as_json()) == {
        "sourceAnchor",
        "objectType",
        "errorCode",
        "message",
        "firstFailed",
        "lastFailed",
        "attempts",
    }


def test_show_object_gives_effective_values_and_its_entries(conflicts: Conflicts) -> None:
    with transaction() as session:
        carol = show_object(session, conflicts.tenant, "carol")
    assert carol is not None
    assert carol.as_json() == {
        "objectId": conflicts.ids["carol"],
        "sourceAnchor": "carol",
        "objectType": "User",
        "displayName": "Carol Xavier",
        "userPrincipalName": "carol@contoso.com",
        "proxyAddresses": ["SMTP:carol@contoso.com"],
        "dirSyncProvisioningErrors": [
            {
                "errorCategory": "PropertyConflict",
                "propertyName": "ProxyAddresses",
                "propertyValue": "smtp:Alice@Contoso.com",
                "conflictingObjectId": conflicts.ids["alice"],
                "timeOccurred": iso_utc(carol.provisioning_errors[0].time_occurred),
            }
        ],
    }


def test_a_deleted_object_and_an_unknown_anchor_are_not_found(conflicts: Conflicts, applier: ExportApplier) -> None:
    applier.apply(export_line(conflicts.tenant.name, "bob", sequence=2, operation="delete"))
    with transaction() as session:
        assert show_object(session, conflicts.tenant, "bob") is None
        assert show_object(session, conflicts.tenant, "nobody") is None


def test_object_list_counts_entries_and_leaves_out_deleted_objects(
    conflicts: Conflicts, applier: ExportApplier
) -> None:
    applier.apply(export_line(conflicts.tenant.name, "bob", sequence=2, operation="delete"))
    with transaction() as session:
        rows = list_objects(session, conflicts.tenant)
    assert [(r.source_anchor, r.provisioning_error_count) for r in rows] == [("alice", 0), ("carol", 1)]
    assert rows[0].user_principal_name == "alice@contoso.com"


def test_timestamps_are_iso_utc_with_z(conflicts: Conflicts) -> None:
    with transaction() as session:
        row = list_provisioning_errors(session, conflicts.tenant, category=PROPERTY_CONFLICT)[0]
    stamp = row.as_json()["timeOccurred"]
    assert stamp.endswith("Z") and "+" not in stamp
    assert stamp == iso_utc(row.time_occurred)
