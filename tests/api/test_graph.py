"""The Graph face as the official Microsoft Graph SDK for Python (msgraph-sdk) reads it, against the live service.

The SDK is configured as an admin's script would be: the base URL of this service and a static bearer
token (one of the tenant's API tokens). The directory is put in place by posting exports over HTTP
and letting real workers apply them, so every conflict is one the service made itself.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from kiota_abstractions.authentication import (
    AccessTokenProvider,
    AllowedHostsValidator,
    BaseBearerTokenAuthenticationProvider,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.contacts.contacts_request_builder import ContactsRequestBuilder
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.on_premises_directory_synchronization import OnPremisesDirectorySynchronization
from msgraph.generated.models.on_premises_directory_synchronization_feature import (
    OnPremisesDirectorySynchronizationFeature,
)
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator
from redis import Redis
from sqlalchemy import delete, select

from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import HOLDERS, WAITERS, post_and_wait
from tests.conftest import export_line

pytestmark = pytest.mark.integration

T = TypeVar("T")
PAGED_USERS = 23  # with the scenario's two users: 25, paged 7 at a time
Users = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters


class StaticToken(AccessTokenProvider):
    """The token an admin pastes into a script; the SDK sends it only to the service's own host."""

    def __init__(self, token: str, host: str) -> None:
        self.token, self.host = token, host

    async def get_authorization_token(self, uri: str, additional_authentication_context: Any = None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator([self.host])


def graph_client(server: ApiServer, token: str) -> GraphServiceClient:
    host = httpx.URL(server.url).host
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticToken(token, host)))
    adapter.base_url = f"{server.url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


_runner = asyncio.Runner()  # one event loop for the module: the SDK's httpx client belongs to the loop it met first


def run(make: Callable[[], Awaitable[T]]) -> T:
    return _runner.run(make())  # type: ignore[arg-type]


@pytest.fixture(scope="module", autouse=True)
def event_loop_closed_afterwards() -> Iterator[None]:
    yield
    _runner.close()


@dataclass(frozen=True)
class GraphDirectory:
    access: TenantAccess
    other: TenantAccess  # a second tenant with a conflict of its own
    ids: dict[str, str]  # sourceAnchor -> objectId, for both tenants


def _tenant(name: str, **options: Any) -> TenantAccess:
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com", **options))
        secret = issue_token(session, tenant, name="graph tests").secret
    return TenantAccess(tenant, secret)


@pytest.fixture(scope="module")
def directory(api_server: ApiServer, workers: object, redis_client: Redis) -> Iterator[GraphDirectory]:
    """Tenant A: the scenario's three holders and three waiters (one conflict per class) and 23 more
    users; tenant B: two users, the second waiting for the first's UPN. Both deleted afterwards."""
    names = [f"graph-{uuid.uuid4().hex[:8]}", f"graph-{uuid.uuid4().hex[:8]}"]
    access, other = _tenant(names[0]), _tenant(names[1])
    try:
        with httpx.Client(base_url=api_server.url, timeout=60) as http:
            post_and_wait(http, redis_client, access, [export_line(access.name, a, c, **x) for a, c, x in HOLDERS])
            paged = [
                export_line(
                    access.name,
                    f"paged-{n:02}",
                    displayName=f"Paged User {n:02}",
                    userPrincipalName=f"paged{n:02}@contoso.com",
                    mail=f"paged{n:02}@contoso.com",
                    proxyAddresses=[f"SMTP:paged{n:02}@contoso.com", f"smtp:Paged.Alias{n:02}@Contoso.com"],
                )
                for n in range(PAGED_USERS)
            ]
            post_and_wait(http, redis_client, access, paged)
            post_and_wait(http, redis_client, access, [export_line(access.name, a, c, **x) for a, c, x in WAITERS])
            first = {"displayName": "Other Alice", "userPrincipalName": "alice@contoso.com"}
            post_and_wait(http, redis_client, other, [export_line(other.name, "o-alice", "User", **first)])
            second = {"displayName": "Other Walker", "userPrincipalName": "ALICE@contoso.com"}
            post_and_wait(http, redis_client, other, [export_line(other.name, "o-walker", "User", **second)])
        with transaction() as session:
            rows = session.execute(
                select(DirectoryObject.source_anchor, DirectoryObject.object_id).where(
                    DirectoryObject.tenant_id.in_([access.tenant.id, other.tenant.id])
                )
            )
            ids = {anchor: object_id for anchor, object_id in rows}
        yield GraphDirectory(access, other, ids)
    finally:
        with transaction() as session:
            session.execute(delete(Tenant).where(Tenant.name.in_(names)))
            session.execute(delete(FailedExport).where(FailedExport.tenant.in_(names)))


@pytest.fixture(scope="module")
def graph(api_server: ApiServer, directory: GraphDirectory) -> GraphServiceClient:
    return graph_client(api_server, directory.access.token)


CONFLICTED = "onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict')"


def test_users_groups_and_contacts_with_errors_are_found_by_filtering_on_the_errors(
    graph: GraphServiceClient, directory: GraphDirectory
) -> None:
    ids = directory.ids

    async def ask() -> tuple[Any, Any, Any]:
        users = await graph.users.get(RequestConfiguration(query_parameters=Users(filter=CONFLICTED)))
        groups = await graph.groups.get(
            RequestConfiguration(
                query_parameters=GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(filter=CONFLICTED)
            )
        )
        contacts = await graph.contacts.get(
            RequestConfiguration(
                query_parameters=ContactsRequestBuilder.ContactsRequestBuilderGetQueryParameters(filter=CONFLICTED)
            )
        )
        return users, groups, contacts

    users, groups, contacts = run(ask)
    assert [u.id for u in users.value] == [ids["bob"]]
    assert [g.id for g in groups.value] == [ids["team"]]
    assert [c.id for c in contacts.value] == [ids["salesfwd"]]

    (upn_error,) = users.value[0].on_premises_provisioning_errors
    assert (upn_error.category, upn_error.property_causing_error, upn_error.value) == (
        "PropertyConflict",
        "UserPrincipalName",
        "Alice@contoso.com",
    )
    assert str(upn_error.additional_data["conflictingObjectId"]) == ids["alice"]
    assert upn_error.occurred_date_time is not None
    assert users.value[0].user_principal_name.startswith("Alice+"), "the effective UPN is the placeholder"
    (proxy_error,) = groups.value[0].on_premises_provisioning_errors
    assert (proxy_error.property_causing_error, proxy_error.value) == ("ProxyAddress", "smtp:alice@contoso.com")
    assert str(proxy_error.additional_data["conflictingObjectId"]) == ids["alice"]
    assert "smtp:alice@contoso.com" not in [p.lower() for p in groups.value[0].proxy_addresses]
    (contact_error,) = contacts.value[0].on_premises_provisioning_errors
    assert str(contact_error.additional_data["conflictingObjectId"]) == ids["sales"]


def test_error_filters_combine_property_and_value_case_insensitively(
    graph: GraphServiceClient, directory: GraphDirectory
) -> None:
    def users_matching(expression: str) -> list[str]:
        found = run(lambda: graph.users.get(RequestConfiguration(query_parameters=Users(filter=expression))))
        return [u.id for u in found.value]

    bob = directory.ids["bob"]
    assert users_matching("onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'userprincipalname')") == [bob]
    assert users_matching("onPremisesProvisioningErrors/any(e:e/propertyCausingError eq 'ProxyAddress')") == []
    assert users_matching("onPremisesProvisioningErrors/any(e:e/value eq 'ALICE@CONTOSO.COM')") == [bob]
    assert users_matching("onPremisesProvisioningErrors/any(e:startswith(e/value, 'alice@'))") == [bob]
    assert users_matching("onPremisesProvisioningErrors/any()") == [bob]
    everyone_else = users_matching(f"not {CONFLICTED} and startswith(displayName, 'Alice')")
    assert everyone_else == [directory.ids["alice"]]


def test_select_returns_only_the_properties_asked_for(
    graph: GraphServiceClient, directory: GraphDirectory, api_server: ApiServer
) -> None:
    query = Users(filter="userPrincipalName eq 'paged03@contoso.com'", select=["displayName", "proxyAddresses"])
    (user,) = run(lambda: graph.users.get(RequestConfiguration(query_parameters=query))).value
    assert (user.display_name, user.proxy_addresses) == (
        "Paged User 03",
        ["SMTP:paged03@contoso.com", "smtp:Paged.Alias03@Contoso.com"],
    )
    assert user.id is None and user.user_principal_name is None and user.on_premises_provisioning_errors is None
    raw = httpx.get(
        f"{api_server.url}/v1.0/users",
        params={"$filter": "userPrincipalName eq 'paged03@contoso.com'", "$select": "displayName,proxyAddresses"},
        headers=directory.access.headers,
    ).json()
    assert [set(item) for item in raw["value"]] == [{"displayName", "proxyAddresses"}]


def test_top_pages_through_next_links_until_every_user_is_seen_once(
    graph: GraphServiceClient, directory: GraphDirectory
) -> None:
    seen: list[str] = []
    pages: list[int] = []

    async def iterate() -> None:
        first = await graph.users.get(RequestConfiguration(query_parameters=Users(top=7)))
        pages.append(len(first.value))
        iterator = PageIterator(first, graph.request_adapter)

        def keep(user: Any) -> bool:
            seen.append(user.id)
            return True

        await iterator.iterate(keep)

    run(iterate)
    users = {anchor for anchor, _, _ in [*HOLDERS, *WAITERS] if anchor in ("alice", "bob")}
    expected = {directory.ids[a] for a in users} | {directory.ids[f"paged-{n:02}"] for n in range(PAGED_USERS)}
    assert len(seen) == len(set(seen)) == PAGED_USERS + 2, "each user exactly once"
    assert set(seen) == expected
    assert pages == [7]


def test_count_answers_every_match_with_eventual_consistency(graph: GraphServiceClient) -> None:
    async def ask() -> Any:
        configuration = RequestConfiguration(
            query_parameters=Users(count=True, top=3, filter="startswith(mail, 'paged1')")
        )
        configuration.headers.add("ConsistencyLevel", "eventual")
        return await graph.users.get(configuration)

    found = run(ask)
    assert found.odata_count == 10, "paged10..paged19"
    assert len(found.value) == 3 and found.odata_next_link


def test_user_principal_name_eq_and_the_user_by_its_upn(graph: GraphServiceClient, directory: GraphDirectory) -> None:
    alice = directory.ids["alice"]
    found = run(
        lambda: graph.users.get(
            RequestConfiguration(query_parameters=Users(filter="userPrincipalName eq 'ALICE@Contoso.com'"))
        )
    )
    assert [u.id for u in found.value] == [alice], "the holder's effective UPN, compared in any case"
    by_upn = run(lambda: graph.users.by_user_id("Alice@CONTOSO.com").get())
    assert (by_upn.id, by_upn.on_premises_immutable_id, by_upn.on_premises_sync_enabled) == (alice, "alice", True)
    by_id = run(
        lambda: graph.users.by_user_id(directory.ids["bob"]).get(
            RequestConfiguration(
                query_parameters=UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(select=["displayName"])
            )
        )
    )
    assert (by_id.display_name, by_id.id) == ("Alice Walker", None)


def test_proxy_addresses_any_matches_in_any_case(graph: GraphServiceClient, directory: GraphDirectory) -> None:
    def users_with(expression: str) -> list[str]:
        found = run(lambda: graph.users.get(RequestConfiguration(query_parameters=Users(filter=expression))))
        return [u.id for u in found.value]

    paged = directory.ids["paged-05"]
    assert users_with("proxyAddresses/any(x:x eq 'SMTP:PAGED.ALIAS05@contoso.COM')") == [paged]
    assert users_with("proxyAddresses/any(x:x eq 'smtp:paged05@contoso.com')") == [paged]
    assert users_with("proxyAddresses/any(x:x in ('smtp:nobody@contoso.com', 'Smtp:Paged.Alias05@Contoso.com'))") == [
        paged
    ]
    assert set(users_with("proxyAddresses/any(x:startswith(x, 'SMTP:PAGED.ALIAS0'))")) == {
        directory.ids[f"paged-{n:02}"] for n in range(10)
    }


def test_startswith_with_orderby_descending(graph: GraphServiceClient, directory: GraphDirectory) -> None:
    query = Users(filter="startswith(displayName, 'paged user 1')", orderby=["displayName desc"], top=4)
    seen: list[str] = []

    async def iterate() -> None:
        first = await graph.users.get(RequestConfiguration(query_parameters=query))
        await PageIterator(first, graph.request_adapter).iterate(lambda user: seen.append(user.display_name) or True)

    run(iterate)
    assert seen == [f"Paged User {n}" for n in range(19, 9, -1)]


def test_the_features_object_reads_and_enables_but_never_disables(
    api_server: ApiServer, directory: GraphDirectory
) -> None:
    other = graph_client(api_server, directory.other.token)
    (sync,) = run(lambda: other.directory.on_premises_synchronization.get()).value
    assert sync.id == str(directory.other.tenant.id)
    assert (
        sync.features.quarantine_upon_upn_conflict_enabled,
        sync.features.quarantine_upon_proxy_addresses_conflict_enabled,
    ) == (True, True)

    refused = OnPremisesDirectorySynchronization(
        features=OnPremisesDirectorySynchronizationFeature(quarantine_upon_upn_conflict_enabled=False)
    )
    item = other.directory.on_premises_synchronization.by_on_premises_directory_synchronization_id(sync.id)
    with pytest.raises(ODataError) as raised:
        run(lambda: item.patch(refused))
    assert raised.value.response_status_code == 400
    assert "can never be disabled" in raised.value.error.message
    again = run(lambda: item.get())
    assert again.features.quarantine_upon_upn_conflict_enabled is True


def test_patch_enables_a_feature_that_was_off(api_server: ApiServer, make_access: Callable[..., TenantAccess]) -> None:
    legacy = make_access(upn_resiliency=False)
    client = graph_client(api_server, legacy.token)
    item = client.directory.on_premises_synchronization.by_on_premises_directory_synchronization_id(
        str(legacy.tenant.id)
    )
    assert run(lambda: item.get()).features.quarantine_upon_upn_conflict_enabled is False
    change = OnPremisesDirectorySynchronization(
        features=OnPremisesDirectorySynchronizationFeature(quarantine_upon_upn_conflict_enabled=True)
    )
    run(lambda: item.patch(change))
    features = run(lambda: item.get()).features
    assert (
        features.quarantine_upon_upn_conflict_enabled,
        features.quarantine_upon_proxy_addresses_conflict_enabled,
    ) == (True, True)


def test_a_token_reads_only_its_own_tenant(api_server: ApiServer, directory: GraphDirectory) -> None:
    other = graph_client(api_server, directory.other.token)
    users = run(lambda: other.users.get()).value
    assert {u.id for u in users} == {directory.ids["o-alice"], directory.ids["o-walker"]}
    conflicted = run(lambda: other.users.get(RequestConfiguration(query_parameters=Users(filter=CONFLICTED)))).value
    assert [u.id for u in conflicted] == [directory.ids["o-walker"]]
    assert run(lambda: other.groups.get()).value == []
    with pytest.raises(ODataError) as raised:
        run(lambda: other.users.by_user_id(directory.ids["bob"]).get())
    assert (raised.value.response_status_code, raised.value.error.code) == (404, "Request_ResourceNotFound")
    by_upn = run(lambda: other.users.by_user_id("alice@contoso.com").get())
    assert by_upn.id == directory.ids["o-alice"], "the same UPN in another tenant is another user"


def test_no_token_or_an_unknown_one_is_401(api_server: ApiServer, directory: GraphDirectory) -> None:
    anonymous = httpx.get(f"{api_server.url}/v1.0/users")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidAuthenticationToken"
    with pytest.raises(ODataError) as raised:
        run(lambda: graph_client(api_server, "sgt_not-a-token").users.get())
    assert raised.value.response_status_code == 401


def test_a_malformed_filter_is_400_with_a_graph_error_code(graph: GraphServiceClient) -> None:
    for expression, code in [
        ("displayName eq", "Request_BadRequest"),
        ("onPremisesProvisioningErrors/any(e:e/category eq 'PropertyConflict'", "Request_BadRequest"),
        ("displayName gt 'A'", "Request_UnsupportedQuery"),
        ("onPremisesProvisioningErrors/all(e:e/category eq 'PropertyConflict')", "Request_UnsupportedQuery"),
    ]:
        with pytest.raises(ODataError) as raised:
            run(lambda q=Users(filter=expression): graph.users.get(RequestConfiguration(query_parameters=q)))
        assert (raised.value.response_status_code, raised.value.error.code) == (400, code), expression
        assert raised.value.error.message


def test_an_unknown_id_is_404_resource_not_found(graph: GraphServiceClient) -> None:
    for lookup in (
        lambda: graph.users.by_user_id(str(uuid.uuid4())).get(),
        lambda: graph.users.by_user_id("nobody@contoso.com").get(),
        lambda: graph.groups.by_group_id(str(uuid.uuid4())).get(),
        lambda: graph.contacts.by_org_contact_id("not-a-guid").get(),
    ):
        with pytest.raises(ODataError) as raised:
            run(lookup)
        assert (raised.value.response_status_code, raised.value.error.code) == (404, "Request_ResourceNotFound")
