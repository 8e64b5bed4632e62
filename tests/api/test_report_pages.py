"""The web report over plain HTTP: who gets in, what is escaped, how pages link to each other."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from api.auth import REPORT_COOKIE
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject
from tests.api.conftest import ApiServer, TenantAccess
from tests.shared.test_queries import insert_waiting_objects

pytestmark = pytest.mark.integration


@contextmanager
def browser(api_server: ApiServer, access: TenantAccess | None = None) -> Iterator[httpx.Client]:
    """A client that keeps cookies like a browser, already signed in when given a tenant."""
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        if access is not None:
            signed = http.post("/report/sign-in", data={"tenant": access.name, "token": access.token})
            assert signed.status_code == 303
        yield http


def names(html: str) -> list[str]:
    return re.findall(r'<th scope="rowgroup"[^>]*><a [^>]*>([^<]*)</a>', html)


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_without_a_cookie_the_browser_is_sent_to_sign_in_and_back(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server) as http:
        response = http.get(f"/report/{access.name}/failures")
        assert response.status_code == 303
        target = urlsplit(response.headers["location"])
        assert target.path == "/report"
        assert parse_qs(target.query) == {"tenant": [access.name], "next": [f"/report/{access.name}/failures"]}
        signed = http.post(
            "/report/sign-in",
            data={"tenant": access.name, "token": access.token, "next": f"/report/{access.name}/failures"},
        )
        assert signed.status_code == 303 and signed.headers["location"] == f"/report/{access.name}/failures"


def test_the_cookie_is_http_only_same_site_strict_and_scoped_to_the_report(
    api_server: ApiServer, access: TenantAccess
) -> None:
    with browser(api_server) as http:
        signed = http.post("/report/sign-in", data={"tenant": access.name, "token": access.token})
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{REPORT_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/report" in cookie


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/report/../../x\\y", "/v1/tenants/t"])
def test_sign_in_never_redirects_off_the_report(api_server: ApiServer, access: TenantAccess, target: str) -> None:
    with browser(api_server) as http:
        signed = http.post("/report/sign-in", data={"tenant": access.name, "token": access.token, "next": target})
    assert signed.headers["location"] == f"/report/{access.name}"


def test_a_wrong_token_is_401_and_sets_no_cookie(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server) as http:
        response = http.post("/report/sign-in", data={"tenant": access.name, "token": "sgt_wrong"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "does not open this tenant" in response.text


def test_a_cookie_for_another_tenant_is_404(api_server: ApiServer, make_access: Callable[..., TenantAccess]) -> None:
    mine, theirs = make_access(), make_access()
    with browser(api_server, mine) as http:
        for path in ("", "/failures", "/objects/x"):
            response = http.get(f"/report/{theirs.name}{path}")
            assert response.status_code == 404, path
            assert theirs.name in response.text and "table" not in response.text


def test_the_report_cookie_opens_no_api_call(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server, access) as http:
        assert http.get(f"/report/{access.name}").status_code == 200
        assert http.get(f"/v1/tenants/{access.name}/features").status_code == 401
        assert http.post(f"/v1/tenants/{access.name}/exports", content=b"[]").status_code == 401


def test_report_pages_carry_a_strict_content_security_policy(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server, access) as http:
        response = http.get(f"/report/{access.name}")
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"


def test_values_are_html_escaped(api_server: ApiServer, access: TenantAccess) -> None:
    insert_waiting_objects(access.tenant, str(uuid.uuid4()), 1)
    with transaction() as session:
        session.execute(
            update(DirectoryObject)
            .where(DirectoryObject.tenant_id == access.tenant.id)
            .values(display_name='<script>alert("x")</script>')
        )
    with browser(api_server, access) as http:
        html = http.get(f"/report/{access.name}", params={"q": '"><b>'}).text + http.get(f"/report/{access.name}").text
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert 'value="&#34;&gt;&lt;b&gt;"' in html


def test_pages_follow_each_other_forward_and_back(api_server: ApiServer, access: TenantAccess) -> None:
    insert_waiting_objects(access.tenant, str(uuid.uuid4()), 30)
    with browser(api_server, access) as http:
        first = http.get(f"/report/{access.name}", params={"sort": "DisplayName", "dir": "Descending"}).text
        assert names(first) == [f"Bulk {n:04d}" for n in range(29, 4, -1)]
        assert link(first, "prev") is None
        second = http.get(link(first, "next") or "").text
        assert names(second) == [f"Bulk {n:04d}" for n in range(4, -1, -1)]
        assert link(second, "next") is None
        back = http.get(link(second, "prev") or "").text
        assert names(back) == names(first)
        assert link(back, "prev") is None and link(back, "next") is not None


def test_an_out_of_date_page_link_shows_the_first_page_with_a_notice(
    api_server: ApiServer, access: TenantAccess
) -> None:
    with browser(api_server, access) as http:
        response = http.get(f"/report/{access.name}", params={"page": "garbage"})
    assert response.status_code == 200
    assert "That page link is out of date" in response.text
