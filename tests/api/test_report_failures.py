"""The failed exports tab (api/report_failures.py): filters, search, page size, keyset pages, what to do,
and retry (one export, or all shown) with the session's CSRF token, by the code of `failures retry`.

The retry from the page runs in Debian's Chromium against real workers; screenshots of the tab go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, expect
from redis import Redis
from sqlalchemy import delete, select

from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.browser import screenshot as shoot
from tests.api.browser import sign_in
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import post, post_and_wait
from tests.api.test_report_pages import browser, csrf_token
from tests.conftest import ARTIFACTS, export_line

pytestmark = pytest.mark.integration

SCREENSHOTS = ARTIFACTS / "screenshots"
BAD_UPNS = 60
TOO_LARGE = 6
ANCHOR_CELL = re.compile(r'<tr>\s*<td class="mono">([^<]*)</td>')
RETRY_ALL = re.compile(r'<form method="post" action="([^"]+)" class="retry-all">(.*?)</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')


@dataclass(frozen=True)
class Failing:
    access: TenantAccess


@pytest.fixture(scope="module")
def failing(api_server: ApiServer, workers: object, redis_client: Redis) -> Iterator[Failing]:
    """A tenant in legacy mode (both resiliency features off) with every kind of failed export but a
    dead letter: Bob asks for Alice's UPN (AttributeValueMustBeUnique, from a worker), 60 exports with a
    UPN without an @ (DataValidationFailed), 6 groups with 301 addresses (LargeObject)."""
    name = f"fail-{uuid.uuid4().hex[:8]}"
    spec = TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com", upn_resiliency=False, proxy_resiliency=False)
    with transaction() as session:
        tenant = create_tenant(session, spec)
        secret = issue_token(session, tenant).secret
    access = TenantAccess(tenant, secret)
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        alice = export_line(name, "alice", displayName="Alice Wong", userPrincipalName="alice@contoso.com")
        assert post_and_wait(http, redis_client, access, [alice])["outcomes"] == {"applied": 1}
        bob = export_line(name, "bob", displayName="Bob", userPrincipalName="alice@contoso.com")
        assert post_and_wait(http, redis_client, access, [bob])["outcomes"] == {"failed": 1}
        invalid = [export_line(name, f"bad-{n:03d}", userPrincipalName=f"no-at-sign-{n}") for n in range(BAD_UPNS)]
        invalid += [
            export_line(name, f"big-{n}", "Group", proxyAddresses=[f"smtp:a{i}@contoso.com" for i in range(301)])
            for n in range(TOO_LARGE)
        ]
        assert post(http, access, invalid)["rejected"] == BAD_UPNS + TOO_LARGE
    yield Failing(access)
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def anchors(html: str) -> list[str]:
    return [unescape(anchor) for anchor in ANCHOR_CELL.findall(html)]


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">', html)
    return unescape(found.group(1)) if found else None


def filed(access: TenantAccess) -> list[FailedExport]:
    """The tenant's failed exports in the tab's order, newest failure first."""
    with transaction() as session:
        return list(
            session.scalars(
                select(FailedExport)
                .where(FailedExport.tenant == access.name)
                .order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
            )
        )


def attempts(access: TenantAccess) -> dict[str, int]:
    return {f.source_anchor or "": f.attempts for f in filed(access)}


def test_the_tab_filters_by_error_code(api_server: ApiServer, failing: Failing) -> None:
    access = failing.access
    with browser(api_server, failing.access) as http:
        unique = http.get(f"/report/{access.name}/failures", params={"code": "AttributeValueMustBeUnique"}).text
        large = http.get(f"/report/{access.name}/failures", params={"code": "LargeObject", "size": "200"}).text
        made_up = http.get(f"/report/{access.name}/failures", params={"code": "<b>", "size": "7"})
    assert anchors(unique) == ["bob"]
    assert "UserPrincipalName value &#39;alice@contoso.com&#39; is already held by object" in unique
    assert "resiliency feature for that attribute is off" in unique, "what to do, beside the message"
    assert sorted(anchors(large)) == [f"big-{n}" for n in range(TOO_LARGE)]
    assert '<option value="LargeObject" selected>LargeObject (6)</option>' in large
    assert made_up.status_code == 200 and len(anchors(made_up.text)) == 50, "off the menu: every code, 50 a page"


def test_search_matches_the_anchor_or_the_message(api_server: ApiServer, failing: Failing) -> None:
    access = failing.access
    with browser(api_server, failing.access) as http:
        by_anchor = http.get(f"/report/{access.name}/failures", params={"q": "BAD-01"}).text
        by_message = http.get(f"/report/{access.name}/failures", params={"q": "prefix@domain", "size": "100"}).text
        nothing = http.get(f"/report/{access.name}/failures", params={"q": "no such text"}).text
    assert sorted(anchors(by_anchor)) == [f"bad-{n:03d}" for n in range(10, 20)]
    assert sorted(anchors(by_message)) == [f"bad-{n:03d}" for n in range(BAD_UPNS)]
    assert anchors(nothing) == [] and "No failed exports match these filters." in nothing


def test_pages_of_25_follow_each_other_forward_and_back(api_server: ApiServer, failing: Failing) -> None:
    access = failing.access
    everything = [f.source_anchor for f in filed(access)]
    assert len(everything) == 1 + BAD_UPNS + TOO_LARGE
    with browser(api_server, access) as http:
        first = http.get(f"/report/{access.name}/failures", params={"size": "25"}).text
        second = http.get(link(first, "next") or "").text
        third = http.get(link(second, "next") or "").text
        back = http.get(link(third, "prev") or "").text
    assert anchors(first) + anchors(second) + anchors(third) == everything, "each row once, in the tab's order"
    assert [len(anchors(p)) for p in (first, second, third)] == [25, 25, 17]
    assert link(first, "prev") is None and link(third, "next") is None
    assert anchors(back) == anchors(second)
    assert "size=25" in (link(second, "next") or ""), "the page size stays with the pages"


def test_each_row_says_what_to_do_by_its_code(api_server: ApiServer, failing: Failing) -> None:
    access = failing.access
    with browser(api_server, access) as http:
        html = unescape(http.get(f"/report/{access.name}/failures", params={"size": "200"}).text)
    assert "The export of bad-007 is not valid as sent" in html
    assert "The export of big-3 is too large" in html
    assert "The export of bob was refused whole" in html


def retry_all_form(html: str) -> tuple[str, dict[str, list[str]]]:
    (action, body), *_ = RETRY_ALL.findall(html)
    fields: dict[str, list[str]] = {}
    for name, value in HIDDEN.findall(body):
        fields.setdefault(name, []).append(unescape(value))
    return unescape(action), fields


def test_retry_all_shown_sends_the_rows_shown_and_no_other(api_server: ApiServer, failing: Failing) -> None:
    """Invalid exports fail again when re-sent, each counting one more attempt: the count shows what was sent."""
    access = failing.access
    before = attempts(access)
    with browser(api_server, access) as http:
        shown = http.get(f"/report/{access.name}/failures", params={"q": "bad-02", "size": "25"}).text
        action, fields = retry_all_form(shown)
        assert action == f"/report/{access.name}/failures/retry" and len(fields["failure"]) == 10
        assert "Retry all shown (10)" in shown
        retried = http.post(action, data=fields)
        assert retried.status_code == 303
        target = urlsplit(retried.headers["location"])
        assert target.path == f"/report/{access.name}/failures"
        assert parse_qs(target.query) == {"q": ["bad-02"], "size": ["25"], "resent": ["0"], "invalid": ["10"]}
        landed = http.get(retried.headers["location"]).text
    assert "Re-sent 0 failed exports; 10 are still invalid and counted another attempt." in re.sub(r"\s+", " ", landed)
    after = attempts(access)
    assert {a for a in after if after[a] != before[a]} == {f"bad-{n:03d}" for n in range(20, 30)}
    assert all(after[a] == before[a] + 1 for a in after if a.startswith("bad-02"))


@pytest.mark.parametrize("forgery", ["no-token", "wrong-token", "another-sessions-token", "the-sign-in-forms-token"])
def test_a_retry_without_the_sessions_csrf_token_is_403_and_sends_nothing(
    api_server: ApiServer, failing: Failing, forgery: str
) -> None:
    """A sent invalid export is filed again at once (one more attempt): an unchanged count is nothing sent."""
    access = failing.access
    (row,) = [f for f in filed(access) if f.source_anchor == "bad-042"]
    with browser(api_server, access) as http, browser(api_server, access) as other:
        form = {"failure": str(row.id), "back": f"/report/{access.name}/failures"}
        if forgery == "wrong-token":
            form["csrf_token"] = "0" * 43
        elif forgery == "another-sessions-token":
            form["csrf_token"] = csrf_token(other.get(f"/report/{access.name}/failures").text)
        elif forgery == "the-sign-in-forms-token":
            form["csrf_token"] = csrf_token(http.get("/report", params={"tenant": access.name}).text)
        refused = http.post(f"/report/{access.name}/failures/retry", data=form)
        assert refused.status_code == 403
        assert "This retry form did not come from this report, so nothing was sent again." in refused.text
        assert attempts(access)["bad-042"] == row.attempts, "nothing was sent"

        form["csrf_token"] = csrf_token(http.get(f"/report/{access.name}/failures").text)
        sent = http.post(f"/report/{access.name}/failures/retry", data=form)
        assert sent.status_code == 303 and "invalid=1" in sent.headers["location"]
    assert attempts(access)["bad-042"] == row.attempts + 1, "the same form with the token does send"


def test_a_retry_of_another_tenants_row_sends_nothing(
    api_server: ApiServer, failing: Failing, make_access: Callable[..., TenantAccess]
) -> None:
    mine = make_access()
    (theirs,) = [f for f in filed(failing.access) if f.source_anchor == "bad-043"]
    with browser(api_server, mine) as http:
        token = csrf_token(http.get(f"/report/{mine.name}/failures").text)
        sent = http.post(f"/report/{mine.name}/failures/retry", data={"failure": str(theirs.id), "csrf_token": token})
        assert sent.status_code == 303 and parse_qs(urlsplit(sent.headers["location"]).query)["resent"] == ["0"]
    assert attempts(failing.access)["bad-043"] == theirs.attempts


# The retry in a browser, against real workers ---------------------------------------------------------


def screenshot(page: Page, name: str) -> None:
    shoot(page, SCREENSHOTS, name)


def test_the_tab_in_a_browser(page: Page, failing: Failing) -> None:
    sign_in(page, failing.access)
    page.get_by_role("link", name="Failed exports 67").click()
    expect(page.get_by_role("heading", name="Failed exports")).to_be_visible()
    page.get_by_label("Error").select_option("DataValidationFailed")
    page.get_by_label("Per page").select_option("25")
    page.get_by_label("Search").fill("bad-0")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("table.failures tbody tr")).to_have_count(25)
    expect(page.get_by_role("button", name="Retry all shown (25)")).to_be_visible()
    page.get_by_role("link", name="Older").click()
    expect(page.locator("table.failures tbody tr")).to_have_count(25)
    page.goto(f"/report/{failing.access.name}/failures?size=25")
    screenshot(page, "failures-tab")


def wait_for_row_to_go(page: Page, anchor: str, timeout_s: float = 60) -> None:
    """Reload as a person would until the row is gone (the worker applies the export meanwhile)."""
    deadline = time.monotonic() + timeout_s
    rows = page.locator("table.failures tbody tr", has_text=anchor)
    while rows.count():
        assert time.monotonic() < deadline, f"the failed export of {anchor} is still listed after {timeout_s:g} s"
        time.sleep(0.5)
        page.reload()


def test_retry_from_the_page_resends_the_export_and_the_row_goes_once_it_applies(
    page: Page, api_server: ApiServer, redis_client: Redis, workers: object, make_access: Callable[..., TenantAccess]
) -> None:
    access = make_access(upn_resiliency=False)
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        alice = export_line(access.name, "alice", displayName="Alice Wong", userPrincipalName="alice@contoso.com")
        bob = export_line(access.name, "bob", displayName="Bob", userPrincipalName="alice@contoso.com")
        assert post_and_wait(http, redis_client, access, [alice])["outcomes"] == {"applied": 1}
        assert post_and_wait(http, redis_client, access, [bob])["outcomes"] == {"failed": 1}
        sign_in(page, access)
        page.get_by_role("link", name="Failed exports 1").click()
        row = page.locator("table.failures tbody tr", has_text="bob")
        expect(row).to_contain_text("AttributeValueMustBeUnique")

        # Still held: the retry re-sends it, and it fails again (a second attempt).
        row.get_by_role("button", name="Retry bob").click()
        expect(page.get_by_role("status")).to_contain_text("Re-sent 1 failed export.")
        deadline = time.monotonic() + 60
        while attempts(access)["bob"] < 2:
            assert time.monotonic() < deadline, "the re-sent export was not applied"
            time.sleep(0.2)
        page.reload()
        expect(page.locator("table.failures tbody tr", has_text="bob").locator("td.num")).to_have_text("2")

        # Alice lets go of the UPN on-premises; now the retry applies and the row goes.
        moved = export_line(
            access.name, "alice", sequence=2, displayName="Alice Wong", userPrincipalName="wong@contoso.com"
        )
        assert post_and_wait(http, redis_client, access, [moved])["outcomes"] == {"applied": 1}
    page.locator("table.failures tbody tr", has_text="bob").get_by_role("button", name="Retry bob").click()
    expect(page.get_by_role("status")).to_contain_text("Re-sent 1 failed export.")
    screenshot(page, "failures-retry-sent")
    wait_for_row_to_go(page, "bob")
    expect(page.get_by_text("No failed exports.")).to_be_visible()
    screenshot(page, "failures-retried")
    with transaction() as session:
        upn = session.scalar(
            select(DirectoryObject.upn).where(
                DirectoryObject.tenant_id == access.tenant.id, DirectoryObject.source_anchor == "bob"
            )
        )
    assert upn == "alice@contoso.com", "the re-sent export applied"
