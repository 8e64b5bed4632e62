"""Tokens and tenant isolation: no token 401, another tenant's token 404, a revoked token 401."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from api.auth import REPORT_COOKIE
from shared.store.engine import transaction
from shared.tenants.tokens import list_tokens, revoke_token
from tests.api.conftest import TenantAccess

pytestmark = pytest.mark.integration

TENANT_PATHS = ["provisioningErrors", "objects/x", "failures", "features"]


@pytest.mark.parametrize("path", TENANT_PATHS)
def test_no_token_is_401_with_a_bearer_challenge(client: httpx.Client, access: TenantAccess, path: str) -> None:
    response = client.get(f"/v1/tenants/{access.name}/{path}")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "syncguard tenant token create" in response.json()["detail"]


@pytest.mark.parametrize(
    "authorization", ["Bearer sgt_made-up", "Bearer", "Basic dXNlcjpwdw==", "sgt_no-scheme", "Bearer " + "x" * 5000]
)
def test_an_unknown_or_malformed_token_is_401(client: httpx.Client, access: TenantAccess, authorization: str) -> None:
    response = client.get(f"/v1/tenants/{access.name}/features", headers={"Authorization": authorization})
    assert response.status_code == 401


def test_posting_without_a_token_is_401_and_enqueues_nothing(client: httpx.Client, access: TenantAccess) -> None:
    response = client.post(f"/v1/tenants/{access.name}/exports", content=b"not json")
    assert response.status_code == 401


@pytest.mark.parametrize("path", TENANT_PATHS)
def test_a_token_for_another_tenant_is_404_like_a_tenant_that_does_not_exist(
    client: httpx.Client, make_access: Callable[..., TenantAccess], path: str
) -> None:
    mine, theirs = make_access(), make_access()
    other_tenant = client.get(f"/v1/tenants/{theirs.name}/{path}", headers=mine.headers)
    no_tenant = client.get(f"/v1/tenants/no-such-tenant/{path}", headers=mine.headers)
    assert other_tenant.status_code == no_tenant.status_code == 404
    assert other_tenant.json()["detail"] == f"tenant {theirs.name!r} not found"
    assert no_tenant.json()["detail"] == "tenant 'no-such-tenant' not found"


def test_a_token_for_another_tenant_cannot_post_there(
    client: httpx.Client, make_access: Callable[..., TenantAccess]
) -> None:
    mine, theirs = make_access(), make_access()
    response = client.post(f"/v1/tenants/{theirs.name}/exports", content=b"{}", headers=mine.headers)
    assert response.status_code == 404


def test_a_revoked_token_is_401_from_then_on(client: httpx.Client, access: TenantAccess) -> None:
    url = f"/v1/tenants/{access.name}/features"
    assert client.get(url, headers=access.headers).status_code == 200
    with transaction() as session:
        (token,) = list_tokens(session, access.tenant)
        revoke_token(session, access.tenant, token.token_id)
    assert client.get(url, headers=access.headers).status_code == 401


def test_a_report_session_id_is_no_api_token(client: httpx.Client, access: TenantAccess) -> None:
    """The report's cookie value opens no API call, as a bearer token or as a cookie."""
    form = client.get("/report", params={"tenant": access.name})
    (csrf,) = re.findall(r'name="csrf_token" value="([^"]+)"', form.text)
    signed = client.post("/report/sign-in", data={"tenant": access.name, "token": access.token, "csrf_token": csrf})
    assert signed.status_code == 303
    session_id = signed.cookies[REPORT_COOKIE]
    url = f"/v1/tenants/{access.name}/features"
    assert client.get(url, headers={"Authorization": f"Bearer {session_id}"}).status_code == 401
    assert client.get(url, headers={"Cookie": f"{REPORT_COOKIE}={session_id}"}).status_code == 401
