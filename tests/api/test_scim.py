"""The SCIM 2.0 face against the live service: uvicorn, real workers, PostgreSQL and Redis.

scim2-tester (python-scim's compliance checker, through scim2-client) drives it as an outside
client; our own HTTP calls check what §6 adds: quarantine instead of 409, legacy 409, release,
Bulk, filters and paging, tenants kept apart, and that SCIM writes what the CLI and Graph read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import httpx2
import pytest
import scim2_models
from pydantic import Field
from redis import Redis
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import CaseExact, InvalidPathException, Mutability, Path, Required, Returned, ScimProvider, Uniqueness
from scim2_tester import CheckResult, Status, check_server

from api.scim import resources
from harness.local_services import REPO
from shared.locks.manager import LockManager, object_lock_key
from shared.store.engine import transaction
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess, running_api
from tests.services import service_environment

pytestmark = pytest.mark.integration

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
DIRECTORY = "urn:syncguard:scim:schemas:extension:directory:2.0"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def _tenant(**options: Any) -> TenantAccess:
    name = f"scim-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com", **options))
        secret = issue_token(session, tenant, name="scim tests").secret
    return TenantAccess(tenant, secret)


@pytest.fixture
def scim(api_server: ApiServer, workers: object) -> Iterator[tuple[httpx.Client, TenantAccess]]:
    access = _tenant()
    with httpx.Client(base_url=f"{api_server.url}/scim/v2", headers=access.headers, timeout=60) as http:
        yield http, access


def user(name: str, anchor: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "userName": name, "displayName": name.split("@")[0].title(), **extra}
    if anchor:
        body["externalId"] = anchor
    return body


CHECKER_NAMES = 1_000_000
"""How many fresh UPNs the checker may pick from: with some 20 users a run, two alike are ~1 in 5,000."""
PATH_WALKING_CHECKS = {
    "object_query_with_attributes",
    "object_list_with_attributes",
    "search_with_attributes",
    "object_replacement",
    "check_add_attribute",
    "check_remove_attribute",
    "check_replace_attribute",
}
"""The checks that fill every attribute, so walk scim2-models' `Path.iter_paths` over the extension."""


def checker_provider(domain: str, *, extension: bool = True) -> ScimProvider:
    """Our own resource models, handed to scim2-client so that scim2-tester generates valid values.

    scim2-tester lets the client's description win over discovery (`checker._describe_service`) and
    takes a field's pydantic `examples` before any random value (`filling.get_random_example_value`):
    that is its supported hook. A random UUID is no UPN, and the service rightly refuses it (400
    invalidValue, design §1.4), so userName gets a million fresh `prefix@domain` names and
    proxyAddresses fresh `smtp:` ones. externalId is declared immutable, as the service treats it:
    it is the sourceAnchor, and changing it is refused with 400 `mutability`.
    """
    run = uuid.uuid4().hex[:8]
    names = [f"checker-{run}-{n}@{domain}" for n in range(CHECKER_NAMES)]
    addresses = [f"smtp:{name}" for name in names[: CHECKER_NAMES // 10]]
    anchor = Annotated[str | None, Mutability.immutable, Returned.default, CaseExact.true]

    class User(scim2_models.User):  # type: ignore[type-arg]
        external_id: anchor = None
        user_name: Annotated[str | None, Uniqueness.server, Required.true] = Field(None, examples=names)

    class Group(scim2_models.Group):
        external_id: anchor = None

    class Contact(resources.Contact):
        external_id: anchor = None

    class DirectoryExtension(resources.DirectoryExtension):
        proxy_addresses: list[str] | None = Field(None, examples=addresses)

    if not extension:  # the core attributes only: what the checker can walk while `upstream_path_bug` lasts
        return ScimProvider(models=[User, Group, Contact])
    return ScimProvider(
        models=[User, Group, Contact, DirectoryExtension],
        resource_types=[kind.resource_type() for kind in resources.KINDS],
    )


def upstream_path_bug(provider: ScimProvider) -> str | None:
    """scim2-models' own failure to walk the paths of a model carrying our extension, if it still has it.

    Its path grammar reads an attribute path as `[URN ":"] ATTRNAME` and ATTRNAME starts with a
    letter, so the bare URN `...:directory:2.0` (design §6) is no path to it: `Path.iter_paths`
    builds `Path(urn)` for the extension field and raises before any request is sent.
    """
    try:
        for kind in resources.KINDS:
            list(Path[provider.model_for(kind.name)].iter_paths())  # type: ignore[misc]
    except InvalidPathException as exc:
        return str(exc)
    return None


def test_scim2_tester_finds_no_error(api_server: ApiServer, workers: object) -> None:
    """scim2-tester against the live service: no ERROR or CRITICAL the service is responsible for.

    While scim2-models cannot walk our extension's paths (`upstream_path_bug`), the checks that
    fill every attribute crash in the checker itself, with no response (`data is None`) and that
    exact message: those, and only those, are set apart and printed as the checker's.
    """
    access = _tenant()
    provider = checker_provider(access.tenant.initial_domain)
    with httpx2.Client(base_url=f"{api_server.url}/scim/v2", headers=access.headers, timeout=60) as http:
        results = check_server(SyncSCIMClient(http, provider=provider))
    summary: dict[str, int] = {}
    for result in results:
        summary[result.status.name] = summary.get(result.status.name, 0) + 1
    bug = upstream_path_bug(provider)
    bad = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    checkers = [
        r for r in bad if bug and (r.reason or "").startswith(bug) and r.data is None and r.title in PATH_WALKING_CHECKS
    ]
    ours = [r for r in bad if r not in checkers]
    print("scim2-tester summary:", json.dumps(summary, sort_keys=True))
    print(f"of which the checker's own crash ({bug}): {len(checkers)}")
    for r in checkers:
        print(f"  checker crash: {r.resource_type} {r.title}")
    assert not ours, "\n".join(f"{r.status.name} {r.resource_type} {r.title}: {r.reason}" for r in ours)
    assert summary.get("SUCCESS", 0) > 30


def anchor_kept(result: CheckResult) -> bool:
    """The checker's PATCH `add` of a new externalId on a resource that has one, refused as §6 says.

    The service mints an externalId (the sourceAnchor) when a client sends none, and an immutable
    attribute "SHALL NOT be updated" once set (RFC 7643 §2.2); scim2-tester adds immutable attributes
    as if the resource had none. The refusal must be ours: 400 `mutability` naming the sourceAnchor.
    """
    data = result.data if isinstance(result.data, dict) else {}
    error = data.get("error")
    return (
        result.title == "check_add_attribute"
        and data.get("urn") == "externalId"
        and "is the object's sourceAnchor" in str(error)
        and getattr(getattr(error, "source", None), "status_code", None) == 400
    )


def test_scim2_tester_path_walking_checks_pass_on_the_core_attributes(api_server: ApiServer, workers: object) -> None:
    """The checks scim2-models' bug keeps from walking our extension, run on the core attributes.

    The client is described without the extension (the responses still carry it), so attributes=,
    excludedAttributes=, PUT and PATCH add/remove/replace are checked on every core attribute.
    """
    access = _tenant()
    provider = checker_provider(access.tenant.initial_domain, extension=False)
    with httpx2.Client(base_url=f"{api_server.url}/scim/v2", headers=access.headers, timeout=60) as http:
        results = check_server(SyncSCIMClient(http, provider=provider))
    walked = [r for r in results if r.title in PATH_WALKING_CHECKS]
    summary: dict[str, int] = {}
    for result in walked:
        summary[result.status.name] = summary.get(result.status.name, 0) + 1
    print("scim2-tester summary of the path-walking checks, core attributes:", json.dumps(summary, sort_keys=True))
    bad = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL) and not anchor_kept(r)]
    assert not bad, "\n".join(f"{r.status.name} {r.resource_type} {r.title}: {r.reason}" for r in bad)
    assert {r.resource_type for r in walked if r.status is Status.SUCCESS} == {"User", "Group", "Contact"}


def test_taken_user_name_gets_the_placeholder_and_one_entry(scim: tuple[httpx.Client, TenantAccess]) -> None:
    http, access = scim
    first = http.post("/Users", json=user("alice@contoso.com", "alice-1"))
    assert first.status_code == 201, first.text
    assert first.headers["Location"].endswith(f"/Users/{first.json()['id']}")
    second = http.post("/Users", json=user("alice@contoso.com", "alice-2"))
    assert second.status_code == 201, second.text
    body = second.json()
    assert body["userName"].startswith("alice+") and body["userName"].endswith(f"@{access.tenant.initial_domain}")
    errors = body[DIRECTORY]["onPremisesProvisioningErrors"]
    assert len(errors) == 1
    assert errors[0]["conflictingObjectId"] == first.json()["id"]
    assert errors[0]["value"] == "alice@contoso.com" and errors[0]["propertyCausingError"] == "UserPrincipalName"


def test_group_asking_for_a_users_upn_as_smtp_is_created_without_it_and_gets_it_on_release(
    scim: tuple[httpx.Client, TenantAccess],
) -> None:
    http, _ = scim
    holder = http.post("/Users", json=user("bob@contoso.com", "bob")).json()
    group = http.post(
        "/Groups",
        json={
            "schemas": [GROUP, DIRECTORY],
            "displayName": "Sales",
            "members": [{"value": holder["id"]}],
            DIRECTORY: {"proxyAddresses": ["SMTP:bob@contoso.com", "smtp:sales@contoso.com"]},
        },
    )
    assert group.status_code == 201, group.text
    created = group.json()
    assert created[DIRECTORY]["proxyAddresses"] == ["smtp:sales@contoso.com"]
    [entry] = created[DIRECTORY]["onPremisesProvisioningErrors"]
    assert entry["conflictingObjectId"] == holder["id"] and entry["propertyCausingError"] == "ProxyAddress"
    assert created["members"][0]["value"] == holder["id"]
    assert http.delete(f"/Users/{holder['id']}").status_code == 204
    deadline = time.monotonic() + 20  # the fast release, not the hourly sweep
    while time.monotonic() < deadline:
        now = http.get(f"/Groups/{created['id']}").json()
        if "SMTP:bob@contoso.com" in now[DIRECTORY].get("proxyAddresses", []):
            assert "onPremisesProvisioningErrors" not in now[DIRECTORY]
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the freed address did not reach the group: {now}")


def test_legacy_tenant_gets_409_uniqueness_recorded_as_a_failed_export(api_server: ApiServer, workers: object) -> None:
    access = _tenant(upn_resiliency=False, proxy_resiliency=False)
    with httpx.Client(base_url=f"{api_server.url}/scim/v2", headers=access.headers, timeout=60) as http:
        assert http.post("/Users", json=user("carol@contoso.com", "carol-1")).status_code == 201
        refused = http.post("/Users", json=user("carol@contoso.com", "carol-2"))
        assert refused.status_code == 409, refused.text
        assert refused.json()["scimType"] == "uniqueness"
        assert refused.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert http.get("/Users", params={"filter": 'externalId eq "carol-2"'}).json()["totalResults"] == 0
    failures = _cli("failures", "list", "--tenant", access.name, "--json")
    assert [f["errorCode"] for f in failures if f["sourceAnchor"] == "carol-2"] == ["AttributeValueMustBeUnique"]


def test_bulk_creates_every_user_and_resolves_bulk_ids(scim: tuple[httpx.Client, TenantAccess]) -> None:
    http, _ = scim
    operations: list[dict[str, Any]] = [
        {"method": "POST", "path": "/Users", "bulkId": f"u{n}", "data": user(f"bulk{n:03}@contoso.com")}
        for n in range(150)
    ]
    operations.append(
        {
            "method": "POST",
            "path": "/Groups",
            "bulkId": "g",
            "data": {
                "schemas": [GROUP],
                "displayName": "Bulk group",
                "members": [{"value": "bulkId:u0"}, {"value": "bulkId:u1"}],
            },
        }
    )
    answer = http.post("/Bulk", json={"schemas": [BULK], "Operations": operations})
    assert answer.status_code == 200, answer.text
    results = answer.json()["Operations"]
    assert len(results) == 151 and {r["status"] for r in results} == {"201"}, results[:3]
    assert http.get("/Users", params={"filter": 'userName sw "bulk"', "count": 0}).json()["totalResults"] == 150
    group_location = next(r["location"] for r in results if r["bulkId"] == "g")
    members = http.get(group_location).json()["members"]
    user_ids = {r["bulkId"]: r["location"].rsplit("/", 1)[-1] for r in results}
    assert [m["value"] for m in members] == [user_ids["u0"], user_ids["u1"]]


def test_bulk_takes_up_to_its_announced_max_payload_size(workers: object) -> None:
    """/Bulk takes SCIM_BULK_MAX_PAYLOAD_BYTES, announced as bulk.maxPayloadSize: more than the other routes' limit, less than the exports route's."""
    access = _tenant()
    bulk_limit = 200 * 1024
    with running_api(API_MAX_OTHER_BODY_BYTES=str(64 * 1024), SCIM_BULK_MAX_PAYLOAD_BYTES=str(bulk_limit)) as server:
        with httpx.Client(base_url=f"{server.url}/scim/v2", headers=access.headers, timeout=120) as http:
            announced = http.get("/ServiceProviderConfig").json()["bulk"]["maxPayloadSize"]
            assert announced == bulk_limit < server.body_limit
            operations = [
                {"method": "POST", "path": "/Users", "bulkId": f"u{n}", "data": user(f"big{n:03}@contoso.com")}
                for n in range(900)
            ]
            body = json.dumps({"schemas": [BULK], "Operations": operations}).encode()
            assert 64 * 1024 < len(body) <= announced, len(body)
            answer = http.post("/Bulk", content=body, headers={"Content-Type": "application/scim+json"})
            assert answer.status_code == 200, answer.text[:500]
            assert {r["status"] for r in answer.json()["Operations"]} == {"201"}
            padded = {**user("pad@contoso.com"), "nickName": "x" * (64 * 1024)}
            assert http.post("/Users", json=padded).status_code == 413  # every other route: the lower limit
            too_big = body[:-2] + b" " * (announced - len(body) + 1) + body[-2:]
            assert (
                http.post("/Bulk", content=too_big, headers={"Content-Type": "application/scim+json"}).status_code
                == 413
            )


def test_filters_and_paging_run_in_the_database(scim: tuple[httpx.Client, TenantAccess]) -> None:
    http, _ = scim
    for n in range(7):
        emails = [{"value": f"p{n}@work.example", "type": "work"}, {"value": f"p{n}@home.example", "type": "home"}]
        assert http.post("/Users", json=user(f"page{n}@contoso.com", f"page-{n}", emails=emails)).status_code == 201

    def names(**params: Any) -> list[str]:
        return [r["userName"] for r in http.get("/Users", params=params).json()["Resources"]]

    assert names(filter='userName eq "PAGE3@contoso.com"') == ["page3@contoso.com"]
    assert names(filter='externalId eq "page-4"') == ["page4@contoso.com"]
    assert len(names(filter='userName ne "page3@contoso.com"')) == 6
    assert names(filter='emails.value co "p5@home"') == ["page5@contoso.com"]
    assert names(filter='emails[type eq "work" and value sw "p6@"]') == ["page6@contoso.com"]
    assert names(filter='displayName pr and (userName sw "page1" or userName sw "page2")', sortBy="userName") == [
        "page1@contoso.com",
        "page2@contoso.com",
    ]
    assert len(names(filter='not (userName co "page")')) == 0
    assert names(filter='userName gt "page5@"', sortBy="userName") == ["page5@contoso.com", "page6@contoso.com"]
    first = http.get("/Users", params={"startIndex": 1, "count": 3, "sortBy": "userName"}).json()
    third = http.get(
        "/Users", params={"startIndex": 7, "count": 3, "sortBy": "userName", "sortOrder": "descending"}
    ).json()
    assert first["totalResults"] == 7 and first["itemsPerPage"] == 3 and first["startIndex"] == 1
    assert [r["userName"] for r in first["Resources"]] == [f"page{n}@contoso.com" for n in range(3)]
    assert [r["userName"] for r in third["Resources"]] == ["page0@contoso.com"]
    searched = http.post(
        "/Users/.search",
        json={"schemas": [SEARCH], "filter": 'userName sw "page"', "sortBy": "userName", "count": 2, "startIndex": 2},
    ).json()
    assert searched["totalResults"] == 7 and [r["userName"] for r in searched["Resources"]] == [
        "page1@contoso.com",
        "page2@contoso.com",
    ]
    assert http.post("/.search", json={"schemas": [SEARCH]}).status_code == 501
    refused = http.get("/Users", params={"filter": "userName eq"})
    assert refused.status_code == 400 and refused.json()["scimType"] == "invalidFilter"


def test_patch_applies_to_the_stored_state(scim: tuple[httpx.Client, TenantAccess]) -> None:
    http, _ = scim
    emails = [
        {"value": "dan@work.example", "type": "work", "primary": True},
        {"value": "dan@home.example", "type": "home"},
    ]
    created = http.post("/Users", json=user("dan@contoso.com", "dan", emails=emails)).json()
    patched = http.patch(
        f"/Users/{created['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": 'emails[type eq "work"].value', "value": "daniel@work.example"},
                {"op": "remove", "path": 'emails[type eq "home"]'},
                {"op": "add", "path": f"{DIRECTORY}:proxyAddresses", "value": ["SMTP:dan@contoso.com"]},
                {"op": "replace", "value": {"displayName": "Daniel"}},
            ],
        },
    )
    assert patched.status_code == 200, patched.text
    body = http.get(f"/Users/{created['id']}").json()
    assert [e["value"] for e in body["emails"]] == ["daniel@work.example"]
    assert body["displayName"] == "Daniel" and body[DIRECTORY]["proxyAddresses"] == ["SMTP:dan@contoso.com"]
    assert body["userName"] == "dan@contoso.com"


def test_the_bare_extension_urn_works_in_attributes_and_patch(scim: tuple[httpx.Client, TenantAccess]) -> None:
    """scim2-models cannot parse the bare ':2.0' URN (api/scim/extension_paths.py); the service still takes it."""
    http, _ = scim
    created = http.post(
        "/Users", json=user("gina@contoso.com", "gina", **{DIRECTORY: {"proxyAddresses": ["SMTP:gina@contoso.com"]}})
    ).json()
    only = http.get(f"/Users/{created['id']}", params={"attributes": DIRECTORY})
    assert only.status_code == 200, only.text
    assert only.json()[DIRECTORY] == {"proxyAddresses": ["SMTP:gina@contoso.com"]} and "userName" not in only.json()
    listed = http.get("/Users", params={"excludedAttributes": DIRECTORY}).json()["Resources"]
    assert listed and all(DIRECTORY not in r and r["userName"] for r in listed)
    patched = http.patch(
        f"/Users/{created['id']}",
        json={
            "schemas": [PATCH],
            "Operations": [{"op": "add", "path": DIRECTORY, "value": {"proxyAddresses": ["smtp:g@contoso.com"]}}],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()[DIRECTORY]["proxyAddresses"] == ["SMTP:gina@contoso.com", "smtp:g@contoso.com"]
    removed = http.patch(
        f"/Users/{created['id']}", json={"schemas": [PATCH], "Operations": [{"op": "remove", "path": DIRECTORY}]}
    )
    assert removed.status_code == 200, removed.text
    assert DIRECTORY not in removed.json() and removed.json()["userName"] == "gina@contoso.com"


def test_no_token_is_401_and_another_tenant_sees_nothing(
    scim: tuple[httpx.Client, TenantAccess], api_server: ApiServer
) -> None:
    http, _ = scim
    created = http.post("/Users", json=user("erin@contoso.com", "erin")).json()
    bare = httpx.get(f"{api_server.url}/scim/v2/Users", timeout=30)
    assert bare.status_code == 401 and bare.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    other = _tenant()
    with httpx.Client(base_url=f"{api_server.url}/scim/v2", headers=other.headers, timeout=60) as theirs:
        assert theirs.get("/Users").json()["totalResults"] == 0
        assert theirs.get(f"/Users/{created['id']}").status_code == 404
        assert theirs.delete(f"/Users/{created['id']}").status_code == 404
        assert theirs.get("/Users", params={"filter": 'userName eq "erin@contoso.com"'}).json()["totalResults"] == 0
    assert http.get(f"/Users/{created['id']}").status_code == 200


def test_what_scim_writes_is_what_the_cli_and_graph_read(
    scim: tuple[httpx.Client, TenantAccess], api_server: ApiServer
) -> None:
    http, access = scim
    holder = http.post("/Users", json=user("frank@contoso.com", "frank-1")).json()
    waiter = http.post(
        "/Users",
        json=user("frank@contoso.com", "frank-2", **{DIRECTORY: {"proxyAddresses": ["SMTP:frank2@contoso.com"]}}),
    ).json()
    shown = _cli("object", "show", "--tenant", access.name, "--source-anchor", "frank-2", "--json")
    assert shown["objectId"] == waiter["id"] and shown["sourceAnchor"] == waiter["externalId"] == "frank-2"
    assert shown["userPrincipalName"] == waiter["userName"] and shown["proxyAddresses"] == ["SMTP:frank2@contoso.com"]
    assert [e["conflictingObjectId"] for e in shown["dirSyncProvisioningErrors"]] == [holder["id"]]
    graph = httpx.get(f"{api_server.url}/v1.0/users/{waiter['id']}", headers=access.headers, timeout=30).json()
    assert graph["onPremisesImmutableId"] == "frank-2" and graph["userPrincipalName"] == waiter["userName"]


def test_bad_input_is_a_scim_error_never_a_500(scim: tuple[httpx.Client, TenantAccess]) -> None:
    http, _ = scim
    for method, path, body in [
        ("POST", "/Users", b"{not json"),
        ("POST", "/Users", json.dumps({"schemas": [USER], "userName": "no-at-sign"}).encode()),
        ("POST", "/Users", json.dumps([1, 2]).encode()),
        ("PATCH", "/Users/nope", json.dumps({"schemas": [PATCH], "Operations": []}).encode()),
        ("POST", "/Bulk", json.dumps({"schemas": [BULK], "Operations": [{"method": "GET"}]}).encode()),
        ("GET", "/Nowhere", b""),
    ]:
        answer = http.request(method, path, content=body, headers={"Content-Type": "application/scim+json"})
        assert 400 <= answer.status_code < 500, (method, path, answer.status_code, answer.text)
        assert answer.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_a_write_past_scim_write_wait_s_is_503_queued_and_still_applied(redis_client: Redis, workers: object) -> None:
    """The object's lock is held (as by another export of it), so the wait runs out: 503 + Retry-After,
    and the export, still queued, is applied by the workers once the lock is free."""
    access = _tenant()
    locks, keys = LockManager(redis_client, ttl_ms=60_000), [object_lock_key(access.name, "hank")]
    token = locks.try_acquire(keys)
    try:
        with running_api(SCIM_WRITE_WAIT_S="1") as server:
            with httpx.Client(base_url=f"{server.url}/scim/v2", headers=access.headers, timeout=60) as http:
                started = time.monotonic()
                answer = http.post("/Users", json=user("hank@contoso.com", "hank"))
                assert answer.status_code == 503, answer.text
                assert 1 <= time.monotonic() - started < 10
                assert answer.headers["Retry-After"] == "5"
                body = answer.json()
                assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and body["status"] == "503"
                assert "queued" in body["detail"] and "SCIM_WRITE_WAIT_S" in body["detail"]
                assert http.get("/Users", params={"filter": 'externalId eq "hank"'}).json()["totalResults"] == 0
                locks.release(keys, token)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    found = http.get("/Users", params={"filter": 'externalId eq "hank"'}).json()
                    if found["totalResults"] == 1:
                        assert found["Resources"][0]["userName"] == "hank@contoso.com"
                        break
                    time.sleep(0.2)
                else:
                    pytest.fail("the queued write was not applied once the lock was free")
    finally:
        locks.release(keys, token)


def _cli(*args: str) -> Any:
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=REPO,
        env=service_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)
