"""The web report over plain HTTP: who gets in, what is escaped, how pages link to each other."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from redis import Redis
from sqlalchemy import update

from api.auth import REPORT_COOKIE
from api.report_session import SIGN_IN_COOKIE
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject
from shared.tenants.sessions import session_key
from shared.tenants.tokens import list_tokens, revoke_token
from tests.api.conftest import ApiServer, TenantAccess, running_api
from tests.shared.test_queries import insert_waiting_objects

pytestmark = pytest.mark.integration

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the page's form (sign-in, or the signed-in pages' sign-out)."""
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(http: httpx.Client, access: TenantAccess, **fields: str) -> httpx.Response:
    """Fill the sign-in form as a browser does: fetch it (its cookie and token), then post it."""
    form = http.get("/report", params={"tenant": access.name})
    assert form.status_code == 200
    data = {"tenant": access.name, "token": access.token, "csrf_token": csrf_token(form.text), **fields}
    return http.post("/report/sign-in", data=data)


@contextmanager
def browser(api_server: ApiServer, access: TenantAccess | None = None) -> Iterator[httpx.Client]:
    """A client that keeps cookies like a browser, already signed in when given a tenant."""
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        if access is not None:
            signed = sign_in(http, access)
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
        signed = sign_in(http, access, next=f"/report/{access.name}/failures")
        assert signed.status_code == 303 and signed.headers["location"] == f"/report/{access.name}/failures"


def test_the_cookie_is_http_only_same_site_strict_and_scoped_to_the_report(
    api_server: ApiServer, access: TenantAccess
) -> None:
    with browser(api_server) as http:
        signed = sign_in(http, access)
    (cookie,) = [c for c in signed.headers.get_list("set-cookie") if c.startswith(f"{REPORT_COOKIE}=")]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/report" in cookie
    assert "Max-Age=28800" in cookie, "the cookie ends with the session (REPORT_SESSION_TTL_S, 8 h by default)"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/report/../../x\\y", "/v1/tenants/t"])
def test_sign_in_never_redirects_off_the_report(api_server: ApiServer, access: TenantAccess, target: str) -> None:
    with browser(api_server) as http:
        signed = sign_in(http, access, next=target)
    assert signed.headers["location"] == f"/report/{access.name}"


def test_a_wrong_token_is_401_and_sets_no_cookie(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server) as http:
        response = sign_in(http, access, token="sgt_wrong")
        assert response.status_code == 401
        assert REPORT_COOKIE not in response.headers.get("set-cookie", "")
        assert "does not open this tenant" in response.text
        data = {"tenant": access.name, "token": access.token, "csrf_token": csrf_token(response.text)}
        again = http.post("/report/sign-in", data=data)  # the form shown with the error still signs in
        assert again.status_code == 303


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


# Sessions: what the cookie holds, and when it stops opening the report --------------------------------

SHORT_TTL_S = 3


@pytest.fixture(scope="module")
def short_session_server(database: str) -> Iterator[ApiServer]:
    """A second API whose report sessions last seconds (REPORT_SESSION_TTL_S)."""
    with running_api(REPORT_SESSION_TTL_S=str(SHORT_TTL_S)) as server:
        yield server


@pytest.fixture(scope="module")
def distrusting_server(database: str) -> Iterator[ApiServer]:
    """A second API that believes forwarded headers only from 192.0.2.1 (TEST-NET), not from loopback."""
    with running_api(FORWARDED_ALLOW_IPS="192.0.2.1") as server:
        yield server


def session_cookie(response: httpx.Response) -> str:
    (header,) = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{REPORT_COOKIE}=")]
    return header.split(";", 1)[0].split("=", 1)[1]


def replay(api_server: ApiServer, path: str, cookie: str) -> httpx.Response:
    """A GET that sends exactly this session cookie, as a copy of it would be sent from anywhere."""
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        return http.get(path, headers={"Cookie": f"{REPORT_COOKIE}={cookie}"})


def is_sign_in_redirect(response: httpx.Response, access: TenantAccess) -> bool:
    target = urlsplit(response.headers.get("location", ""))
    return (
        response.status_code == 303 and target.path == "/report" and parse_qs(target.query)["tenant"] == [access.name]
    )


def test_the_cookie_holds_an_opaque_session_id_stored_only_as_a_hash(
    api_server: ApiServer, access: TenantAccess, redis_client: Redis
) -> None:
    with browser(api_server) as http:
        signed = sign_in(http, access)
        cookie = session_cookie(signed)
        assert http.get(f"/report/{access.name}").status_code == 200
    assert access.token not in " ".join(signed.headers.get_list("set-cookie"))
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", cookie), "256 random bits, URL-safe"
    stored = redis_client.get(session_key(cookie))
    assert stored is not None, "the session lives in Redis under the hash of its id"
    assert cookie.encode() not in stored and access.token.encode() not in stored
    assert not [key for key in redis_client.scan_iter(f"*{cookie}*")], "the id itself is a key nowhere"
    assert 0 < redis_client.ttl(session_key(cookie)) <= 8 * 3600
    assert replay(api_server, f"/report/{access.name}", cookie).status_code == 200


def test_signing_out_ends_the_session_on_the_server(
    api_server: ApiServer, access: TenantAccess, redis_client: Redis
) -> None:
    with browser(api_server) as http:
        cookie = session_cookie(sign_in(http, access))
        signed_in = http.get(f"/report/{access.name}")
        out = http.post("/report/sign-out", data={"csrf_token": csrf_token(signed_in.text)})
        assert out.status_code == 303 and out.headers["location"] == "/report"
        assert f'{REPORT_COOKIE}=""' in out.headers["set-cookie"], "the browser drops its cookie"
        assert is_sign_in_redirect(http.get(f"/report/{access.name}"), access)
    assert redis_client.get(session_key(cookie)) is None
    assert is_sign_in_redirect(replay(api_server, f"/report/{access.name}", cookie), access), "a copy is useless"


def test_revoking_the_token_ends_its_sessions(api_server: ApiServer, access: TenantAccess, redis_client: Redis) -> None:
    with browser(api_server) as http:
        cookie = session_cookie(sign_in(http, access))
    assert replay(api_server, f"/report/{access.name}/failures", cookie).status_code == 200
    with transaction() as session:
        (token,) = list_tokens(session, access.tenant)
        revoke_token(session, access.tenant, token.token_id)
    assert is_sign_in_redirect(replay(api_server, f"/report/{access.name}/failures", cookie), access)
    assert redis_client.get(session_key(cookie)) is None, "the revoked token's session is deleted"


def test_an_expired_session_sends_the_browser_to_sign_in(
    short_session_server: ApiServer, access: TenantAccess, redis_client: Redis
) -> None:
    with browser(short_session_server) as http:
        signed = sign_in(http, access)
        signed_at = time.monotonic()
        cookie = session_cookie(signed)
        assert f"Max-Age={SHORT_TTL_S}" in signed.headers["set-cookie"]
        assert http.get(f"/report/{access.name}").status_code == 200
    assert redis_client.ttl(session_key(cookie)) <= SHORT_TTL_S
    time.sleep(max(0.0, signed_at + SHORT_TTL_S + 0.5 - time.monotonic()))
    expired = replay(short_session_server, f"/report/{access.name}/failures", cookie)
    assert is_sign_in_redirect(expired, access)
    assert parse_qs(urlsplit(expired.headers["location"]).query)["next"] == [f"/report/{access.name}/failures"]


def test_a_session_past_its_expiry_opens_nothing_even_while_redis_keeps_it(
    api_server: ApiServer, access: TenantAccess, redis_client: Redis
) -> None:
    """The record's own expiry is checked too, not only Redis's TTL (a key restored without its TTL)."""
    with browser(api_server) as http:
        cookie = session_cookie(sign_in(http, access))
    key = session_key(cookie)
    record = json.loads(redis_client.get(key) or b"{}")
    redis_client.set(key, json.dumps({**record, "expires_at": time.time() - 1}), keepttl=True)
    assert is_sign_in_redirect(replay(api_server, f"/report/{access.name}", cookie), access)


def test_a_made_up_or_malformed_session_cookie_opens_nothing(api_server: ApiServer, access: TenantAccess) -> None:
    for cookie in ("A" * 43, access.token, "x", "../" * 20):
        assert is_sign_in_redirect(replay(api_server, f"/report/{access.name}", cookie), access), cookie


# CSRF: a form post needs the token of a form this report served ------------------------------------


@pytest.mark.parametrize("forgery", ["no-token", "wrong-token", "another-browsers-token", "no-cookie"])
def test_sign_in_without_a_valid_csrf_token_is_403_and_signs_nobody_in(
    api_server: ApiServer, access: TenantAccess, forgery: str
) -> None:
    with browser(api_server) as http, browser(api_server) as other:
        form = http.get("/report", params={"tenant": access.name})
        data = {"tenant": access.name, "token": access.token, "csrf_token": csrf_token(form.text)}
        if forgery == "no-token":
            del data["csrf_token"]
        elif forgery == "wrong-token":
            data["csrf_token"] = "0" * 64
        elif forgery == "another-browsers-token":
            data["csrf_token"] = csrf_token(other.get("/report").text)
        else:
            http.cookies.delete(SIGN_IN_COOKIE)
        refused = http.post("/report/sign-in", data=data)
        assert refused.status_code == 403
        assert "This sign-in form has expired or did not come from this report" in refused.text
        assert REPORT_COOKIE not in refused.headers.get("set-cookie", "")
        assert is_sign_in_redirect(http.get(f"/report/{access.name}"), access)


@pytest.mark.parametrize("forgery", ["no-token", "wrong-token", "the-sign-in-forms-token"])
def test_sign_out_without_a_valid_csrf_token_is_403_and_keeps_the_session(
    api_server: ApiServer, access: TenantAccess, forgery: str, redis_client: Redis
) -> None:
    with browser(api_server) as http:
        form = http.get("/report", params={"tenant": access.name})
        data = {"csrf_token": csrf_token(form.text)}
        cookie = session_cookie(sign_in(http, access))
        if forgery == "no-token":
            data = {}
        elif forgery == "wrong-token":
            data["csrf_token"] = "0" * 43
        refused = http.post("/report/sign-out", data=data)
        assert refused.status_code == 403
        assert "This sign-out form did not come from this report, so you are still signed in" in refused.text
        assert "set-cookie" not in refused.headers
        assert http.get(f"/report/{access.name}").status_code == 200
    assert redis_client.get(session_key(cookie)) is not None


def test_the_refusal_page_keeps_the_report_policy(api_server: ApiServer, access: TenantAccess) -> None:
    with browser(api_server) as http:
        refused = http.post("/report/sign-in", data={"tenant": access.name, "token": access.token})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("text/html")
    assert refused.headers["content-security-policy"].startswith("default-src 'none'")
    assert f'href="/report?tenant={access.name}"' in refused.text


# Secure: only when an allowed proxy says the client came over HTTPS ------------------------------------


def cookies_set(http: httpx.Client, access: TenantAccess, headers: dict[str, str]) -> list[str]:
    """The Set-Cookie headers of the sign-in form and of signing in, sent with these request headers.

    The cookie travels by hand: a client keeps a `Secure` cookie away from plain http, as it should.
    """
    form = http.get("/report", params={"tenant": access.name}, headers=headers)
    sign_in_cookie = form.headers["set-cookie"].split(";", 1)[0]
    signed = http.post(
        "/report/sign-in",
        data={"tenant": access.name, "token": access.token, "csrf_token": csrf_token(form.text)},
        headers={**headers, "Cookie": sign_in_cookie},
    )
    assert signed.status_code == 303, signed.text
    return [form.headers["set-cookie"], *signed.headers.get_list("set-cookie")]


def test_cookies_are_secure_when_an_allowed_proxy_says_https(api_server: ApiServer, access: TenantAccess) -> None:
    """The test API trusts loopback (uvicorn's default allow list), as compose and deploy trust their proxies."""
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        behind_tls = cookies_set(http, access, {"X-Forwarded-Proto": "https"})
        plain = cookies_set(http, access, {})
    assert {c.split("=", 1)[0] for c in behind_tls} == {SIGN_IN_COOKIE, REPORT_COOKIE}
    assert all("; Secure" in cookie for cookie in behind_tls), behind_tls
    assert not [cookie for cookie in plain if "Secure" in cookie], plain


def test_cookies_are_not_secure_when_the_claim_comes_from_an_address_not_allowed(
    distrusting_server: ApiServer, access: TenantAccess
) -> None:
    with httpx.Client(base_url=distrusting_server.url, timeout=30) as http:
        claimed = cookies_set(http, access, {"X-Forwarded-Proto": "https"})
    assert not [cookie for cookie in claimed if "Secure" in cookie], claimed
