"""The Graph face's refusals over plain HTTP: Graph's error body and code, and nothing changed by a refused request."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from redis import Redis

from shared.store.engine import transaction
from shared.tenants.tokens import revoke_token
from tests.api.conftest import TenantAccess
from tests.api.scenario import build_directory

pytestmark = pytest.mark.integration


def graph_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


@pytest.mark.parametrize(
    ("params", "code", "says"),
    [
        ({"$skip": "10"}, "Request_UnsupportedQuery", "$skip"),
        ({"$expand": "manager"}, "Request_UnsupportedQuery", "$expand"),
        ({"$top": "0"}, "Request_BadRequest", "$top"),
        ({"$top": "1000"}, "Request_BadRequest", "$top"),
        ({"$top": "ten"}, "Request_BadRequest", "$top"),
        ({"$select": "displayName,shoeSize"}, "Request_BadRequest", "shoeSize"),
        ({"$orderby": "mail"}, "Request_UnsupportedQuery", "mail"),
        ({"$orderby": "displayName,userPrincipalName"}, "Request_UnsupportedQuery", "one property"),
        ({"$search": "displayName:x"}, "Request_UnsupportedQuery", "double quotes"),
        ({"$search": '"mail:x"'}, "Request_UnsupportedQuery", "mail"),
        ({"$skiptoken": "not-a-token"}, "Request_BadRequest", "$skiptoken"),
        ({"$count": "maybe"}, "Request_BadRequest", "$count"),
        ({"$filter": "shoeSize eq 4"}, "Request_UnsupportedQuery", "shoeSize"),
        ({"$filter": "endswith(mail, '@contoso.com')"}, "Request_UnsupportedQuery", "endswith"),
        ({"$filter": "proxyAddresses/any(x:x/value eq 'a')"}, "Request_UnsupportedQuery", "no properties"),
        ({"$filter": "displayName eq 'a' and"}, "Request_BadRequest", "not a valid OData expression"),
        ({"$filter": "displayName eq 'a\x00'"}, "Request_BadRequest", "NUL"),
    ],
)
def test_a_query_the_face_cannot_answer_is_400_saying_why(
    client: httpx.Client, access: TenantAccess, params: dict[str, str], code: str, says: str
) -> None:
    message = graph_error(client.get("/v1.0/users", params=params, headers=access.headers), 400, code)
    assert says in message


def test_user_principal_name_is_a_users_property_only(client: httpx.Client, access: TenantAccess) -> None:
    response = client.get("/v1.0/groups", params={"$filter": "userPrincipalName eq 'a@b.c'"}, headers=access.headers)
    assert "userPrincipalName" in graph_error(response, 400, "Request_UnsupportedQuery")
    response = client.get("/v1.0/groups", params={"$orderby": "userPrincipalName"}, headers=access.headers)
    graph_error(response, 400, "Request_UnsupportedQuery")


def test_unknown_paths_and_methods_answer_in_graphs_body(client: httpx.Client, access: TenantAccess) -> None:
    graph_error(client.get("/v1.0/me", headers=access.headers), 404, "Request_ResourceNotFound")
    graph_error(client.post("/v1.0/users", json={}, headers=access.headers), 405, "Request_BadRequest")
    graph_error(client.delete("/v1.0/users/x", headers=access.headers), 405, "Request_BadRequest")


def test_a_revoked_token_is_401(client: httpx.Client, access: TenantAccess) -> None:
    assert client.get("/v1.0/users", headers=access.headers).status_code == 200
    with transaction() as session:
        from shared.tenants.tokens import list_tokens

        tenant = session.merge(access.tenant)
        (token,) = list_tokens(session, tenant)
        revoke_token(session, tenant, token.token_id)
    response = client.get("/v1.0/users", headers=access.headers)
    graph_error(response, 401, "InvalidAuthenticationToken")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    graph_error(
        client.get("/v1.0/users", headers={"Authorization": "Basic dXNlcjpwdw=="}), 401, "InvalidAuthenticationToken"
    )


def _sync(client: httpx.Client, access: TenantAccess) -> dict[str, bool]:
    response = client.get(f"/v1.0/directory/onPremisesSynchronization/{access.tenant.id}", headers=access.headers)
    assert response.status_code == 200, response.text
    features: dict[str, bool] = response.json()["features"]
    return features


def test_a_refused_patch_changes_nothing(client: httpx.Client, make_access: Callable[..., TenantAccess]) -> None:
    access = make_access(upn_resiliency=False)
    path = f"/v1.0/directory/onPremisesSynchronization/{access.tenant.id}"
    both = {"quarantineUponUpnConflictEnabled": True, "quarantineUponProxyAddressesConflictEnabled": False}
    message = graph_error(
        client.patch(path, json={"features": both}, headers=access.headers), 400, "Request_BadRequest"
    )
    assert "DuplicateProxyAddressResiliency" in message and "can never be disabled" in message
    unknown = {"quarantineUponUpnConflictEnabled": True, "blockSoftMatchEnabled": True}
    assert "blockSoftMatchEnabled" in graph_error(
        client.patch(path, json={"features": unknown}, headers=access.headers), 400, "Request_BadRequest"
    )
    graph_error(client.patch(path, content=b"{not json", headers=access.headers), 400, "Request_BadRequest")
    too_big = b'{"features": {"quarantineUponUpnConflictEnabled": true}, "x": "' + b"y" * 20_000 + b'"}'
    graph_error(client.patch(path, content=too_big, headers=access.headers), 413, "Request_EntityTooLarge")
    assert _sync(client, access) == {
        "quarantineUponUpnConflictEnabled": False,
        "quarantineUponProxyAddressesConflictEnabled": True,
    }, "no refused request enabled anything"


def test_another_tenants_features_are_not_found(client: httpx.Client, make_access: Callable[..., TenantAccess]) -> None:
    mine, theirs = make_access(), make_access(upn_resiliency=False)
    path = f"/v1.0/directory/onPremisesSynchronization/{theirs.tenant.id}"
    graph_error(client.get(path, headers=mine.headers), 404, "Request_ResourceNotFound")
    change = {"features": {"quarantineUponUpnConflictEnabled": True}}
    graph_error(client.patch(path, json=change, headers=mine.headers), 404, "Request_ResourceNotFound")
    assert _sync(client, theirs)["quarantineUponUpnConflictEnabled"] is False


def test_search_finds_display_names_by_a_word_prefix(
    client: httpx.Client, redis_client: Redis, workers: object, access: TenantAccess
) -> None:
    build_directory(client, redis_client, access)

    def names(term: str) -> list[str]:
        response = client.get(
            "/v1.0/users",
            params={"$search": f'"displayName:{term}"', "$orderby": "displayName"},
            headers={**access.headers, "ConsistencyLevel": "eventual"},
        )
        assert response.status_code == 200, response.text
        return [user["displayName"] for user in response.json()["value"]]

    assert names("alice") == ["Alice Walker", "Alice Wong"]
    assert names("WAL") == ["Alice Walker"]
    assert names("lice") == [], "a word prefix, not any substring"
    count = client.get(
        "/v1.0/groups", params={"$search": '"displayName:tea"', "$count": "true"}, headers=access.headers
    ).json()
    assert (count["@odata.count"], [g["displayName"] for g in count["value"]]) == (1, ["Team"])
    assert client.get("/v1.0/contacts/$count", headers=access.headers).text == "2"
