"""Read endpoints over real HTTP: what real workers applied is visible through each of them, filtered and paged."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import delete

from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import Directory, build_directory, post
from tests.conftest import export_line

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def directory(api_server: ApiServer, workers: object, redis_client: Redis) -> Iterator[Directory]:
    """One tenant for the whole module: building it takes two rounds through the workers."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        token = issue_token(session, tenant).secret
    access = TenantAccess(tenant, token)
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        built = build_directory(http, redis_client, access)
        rejected = post(http, access, [export_line(name, "badgroup", "Group", userPrincipalName="g@contoso.com")])
        assert rejected["rejected"] == 1
    yield built
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def errors(client: httpx.Client, directory: Directory, **params: Any) -> httpx.Response:
    access = directory.access
    return client.get(f"/v1/tenants/{access.name}/provisioningErrors", params=params, headers=access.headers)


def anchors(client: httpx.Client, directory: Directory, **params: Any) -> list[str]:
    response = errors(client, directory, **params)
    assert response.status_code == 200, response.text
    return [item["sourceAnchor"] for item in response.json()["value"]]


def get_object(client: httpx.Client, directory: Directory, anchor: str) -> dict[str, Any]:
    access = directory.access
    response = client.get(f"/v1/tenants/{access.name}/objects/{anchor}", headers=access.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- what was applied is visible ---------------------------------------------------------------


def test_conflicts_of_all_three_object_classes_are_listed_in_graph_naming(
    client: httpx.Client, directory: Directory
) -> None:
    response = errors(client, directory)
    assert response.status_code == 200
    page = response.json()
    assert "@odata.nextLink" not in page
    by_anchor = {item["sourceAnchor"]: item for item in page["value"]}
    assert set(by_anchor) == {"bob", "team", "salesfwd"}
    assert {item["objectType"] for item in page["value"]} == {"User", "Group", "Contact"}
    alice, sales = get_object(client, directory, "alice")["id"], get_object(client, directory, "sales")["id"]
    assert by_anchor["bob"]["onPremisesProvisioningErrors"] == [
        {
            "category": "PropertyConflict",
            "occurredDateTime": by_anchor["bob"]["onPremisesProvisioningErrors"][0]["occurredDateTime"],
            "propertyCausingError": "UserPrincipalName",
            "value": "Alice@contoso.com",
            "conflictingObjectId": alice,
        }
    ]
    assert by_anchor["bob"]["onPremisesProvisioningErrors"][0]["occurredDateTime"].endswith("Z")
    assert [e["conflictingObjectId"] for e in by_anchor["team"]["onPremisesProvisioningErrors"]] == [alice]
    assert [e["value"] for e in by_anchor["salesfwd"]["onPremisesProvisioningErrors"]] == ["SMTP:sales@contoso.com"]
    assert [e["conflictingObjectId"] for e in by_anchor["salesfwd"]["onPremisesProvisioningErrors"]] == [sales]


def test_an_object_shows_its_effective_values_and_its_entries(client: httpx.Client, directory: Directory) -> None:
    bob = get_object(client, directory, "bob")
    assert bob["objectType"] == "User" and bob["displayName"] == "Alice Walker"
    assert bob["userPrincipalName"].startswith("Alice+") and bob["userPrincipalName"].endswith(
        f"@{directory.access.name}.onmicrosoft.com"
    ), "a placeholder UPN while the wanted one is held"
    assert [e["propertyCausingError"] for e in bob["onPremisesProvisioningErrors"]] == ["UserPrincipalName"]

    team = get_object(client, directory, "team")
    assert team["proxyAddresses"] == ["SMTP:team@contoso.com"], "the quarantined address is left out"
    assert get_object(client, directory, "alice")["onPremisesProvisioningErrors"] == [], "the holder has no entry"


def test_a_missing_object_is_404_naming_it(client: httpx.Client, directory: Directory) -> None:
    access = directory.access
    response = client.get(f"/v1/tenants/{access.name}/objects/nobody", headers=access.headers)
    assert response.status_code == 404
    assert "nobody" in response.json()["detail"]


def test_a_source_anchor_with_a_slash_is_found(client: httpx.Client, directory: Directory, redis_client: Redis) -> None:
    from tests.api.scenario import post_and_wait

    anchor = "base64/with+slash=="
    access = directory.access
    posted = post_and_wait(client, redis_client, access, [export_line(access.name, anchor, "Contact", displayName="S")])
    assert posted["outcomes"] == {"applied": 1}
    assert get_object(client, directory, "base64%2Fwith%2Bslash%3D%3D")["sourceAnchor"] == anchor


def test_failed_exports_are_listed_with_code_and_message(client: httpx.Client, directory: Directory) -> None:
    access = directory.access
    response = client.get(f"/v1/tenants/{access.name}/failures", headers=access.headers)
    assert response.status_code == 200
    (failure,) = [f for f in response.json()["value"] if f["sourceAnchor"] == "badgroup"]
    assert failure["objectType"] == "Group" and failure["errorCode"] == "DataValidationFailed"
    assert "userPrincipalName" in failure["message"] and failure["attempts"] == 1


def test_features_are_read(client: httpx.Client, directory: Directory) -> None:
    access = directory.access
    response = client.get(f"/v1/tenants/{access.name}/features", headers=access.headers)
    assert response.json() == {"DuplicateUPNResiliency": True, "DuplicateProxyAddressResiliency": True}


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"propertyName": "UserPrincipalName"}, ["bob"]),
        ({"propertyName": "ProxyAddresses"}, ["team", "salesfwd"]),
        ({"propertyName": "UserPrincipalName", "propertyValue": "ALICE@contoso.com"}, ["bob"]),
        ({"propertyName": "ProxyAddresses", "propertyValue": "alice@CONTOSO.com"}, ["team"]),
        ({"propertyName": "ProxyAddresses", "propertyValue": "smtp:sales@contoso.com"}, ["salesfwd"]),
        ({"propertyName": "ProxyAddresses", "propertyValue": "X500:sales@contoso.com"}, []),
        ({"search": "WALKER"}, ["bob"]),  # display name
        ({"search": "sales@"}, ["salesfwd"]),  # the value asked for
        ({"search": "onmicrosoft"}, ["bob"]),  # the effective (placeholder) UPN
        ({"search": "100%"}, []),  # LIKE wildcards are plain characters
        ({"objectType": "Group"}, ["team"]),
        ({"objectType": "Contact"}, ["salesfwd"]),
        ({"objectType": "User", "propertyName": "ProxyAddresses"}, []),
        ({"category": "PropertyConflict", "objectType": "User"}, ["bob"]),
    ],
)
def test_filters(client: httpx.Client, directory: Directory, params: dict[str, str], expected: list[str]) -> None:
    """Compared as sets: the waiters were applied concurrently, so their time order is not fixed."""
    got = anchors(client, directory, **params)
    assert sorted(got) == sorted(expected) and len(got) == len(set(got))


@pytest.mark.parametrize(
    ("order", "direction", "expected"),
    [
        ("DisplayName", "Ascending", ["bob", "salesfwd", "team"]),  # Alice Walker, Sales Forward, Team
        ("DisplayName", "Descending", ["team", "salesfwd", "bob"]),
        ("UserPrincipalName", "Ascending", ["bob", "team", "salesfwd"]),  # groups and contacts have none: last
        ("UserPrincipalName", "Descending", ["salesfwd", "team", "bob"]),
    ],
)
def test_order_by(client: httpx.Client, directory: Directory, order: str, direction: str, expected: list[str]) -> None:
    got = anchors(client, directory, orderBy=order, sortDirection=direction)
    if order == "UserPrincipalName":  # the two without a UPN tie on the sort key; the row id orders them
        assert got[0 if direction == "Ascending" else 2] == "bob" and set(got) == set(expected)
    else:
        assert got == expected


def test_order_by_none_follows_the_first_entrys_time(client: httpx.Client, directory: Directory) -> None:
    page = errors(client, directory).json()["value"]
    times = [item["onPremisesProvisioningErrors"][0]["occurredDateTime"] for item in page]
    assert times == sorted(times)
    assert anchors(client, directory, sortDirection="Descending") == [item["sourceAnchor"] for item in page][::-1]


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({"propertyValue": "alice@contoso.com"}, 400, "propertyValue requires propertyName"),
        ({"skipToken": "not-a-token"}, 400, "skipToken"),
        ({"top": 0}, 422, "top"),
        ({"top": 501}, 422, "top"),
        ({"propertyName": "Mail"}, 422, "propertyName"),
        ({"orderBy": "Surname"}, 422, "orderBy"),
        ({"category": "Other"}, 422, "category"),
        ({"search": "a\x00b"}, 422, "search"),
    ],
)
def test_invalid_queries_say_what_is_wrong(
    client: httpx.Client, directory: Directory, params: dict[str, Any], status: int, fragment: str
) -> None:
    response = errors(client, directory, **params)
    assert response.status_code == status, response.text
    assert fragment in response.text


# --- paging -------------------------------------------------------------------------------------


def follow(client: httpx.Client, directory: Directory, **params: Any) -> list[list[str]]:
    """Every page, following @odata.nextLink until there is none."""
    pages: list[list[str]] = []
    response = errors(client, directory, **params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["sourceAnchor"] for item in body["value"]])
        if "@odata.nextLink" not in body:
            return pages
        assert len(pages) < 50, "paging does not end"
        response = client.get(body["@odata.nextLink"], headers=directory.access.headers)


@pytest.mark.parametrize("order", ["None", "DisplayName", "UserPrincipalName"])
@pytest.mark.parametrize("direction", ["Ascending", "Descending"])
def test_paging_visits_every_object_once_in_order(
    client: httpx.Client, directory: Directory, order: str, direction: str
) -> None:
    whole = anchors(client, directory, orderBy=order, sortDirection=direction)
    pages = follow(client, directory, orderBy=order, sortDirection=direction, top=1)
    assert pages == [[anchor] for anchor in whole]


def test_a_page_token_is_bound_to_its_sort_order(client: httpx.Client, directory: Directory) -> None:
    first = errors(client, directory, orderBy="DisplayName", top=1).json()
    token = httpx.URL(first["@odata.nextLink"]).params["skipToken"]
    response = errors(client, directory, orderBy="UserPrincipalName", top=1, skipToken=token)
    assert response.status_code == 400
    assert "another sort order" in response.json()["detail"]
