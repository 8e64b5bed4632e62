"""The web report in headless Chromium (Debian's, driven by Playwright), as a person uses it.

One screenshot per page goes to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Cookie, Page, expect
from redis import Redis
from sqlalchemy import delete

from api.auth import REPORT_COOKIE
from api.report_session import SIGN_IN_COOKIE
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.browser import screenshot as shoot
from tests.api.browser import sign_in
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import Directory, build_directory, post, post_and_wait
from tests.conftest import ARTIFACTS, export_line

pytestmark = pytest.mark.integration

SCREENSHOTS = ARTIFACTS / "report"


@pytest.fixture(scope="module")
def reported(api_server: ApiServer, workers: object, redis_client: Redis) -> Iterator[Directory]:
    """Conflicts of every object class, a display name full of markup, and one failed export."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
    access = TenantAccess(tenant, secret)
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        built = build_directory(http, redis_client, access)
        marked_up = export_line(
            name,
            "markup",
            "Contact",
            displayName='<img src=x onerror=alert(1)> & "Co"',
            proxyAddresses=["SMTP:sales@contoso.com"],
        )
        assert post_and_wait(http, redis_client, access, [marked_up])["outcomes"] == {"applied": 1}
        post(http, access, [export_line(name, "broken-group", "Group", userPrincipalName="g@contoso.com")])
    yield built
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def screenshot(page: Page, name: str) -> None:
    shoot(page, SCREENSHOTS, name)


def rows(page: Page) -> list[str]:
    """The object names listed, in order."""
    return page.locator("table.conflicts tbody.object th").all_inner_texts()


def test_the_report_lists_conflicts_of_users_groups_and_contacts(page: Page, reported: Directory) -> None:
    page.goto(f"/report/{reported.access.name}")
    screenshot(page, "1-sign-in")
    sign_in(page, reported.access)
    expect(page.get_by_role("heading", name="Duplicate attribute conflicts")).to_be_visible()
    assert sorted(rows(page)) == sorted(
        ['<img src=x onerror=alert(1)> & "Co"', "Alice Walker", "Sales Forward", "Team"]
    )
    badges = page.locator("table.conflicts .badge").all_inner_texts()
    assert sorted(set(badges)) == ["Contact", "Group", "User"]
    expect(page.get_by_role("link", name="Contacts 2")).to_be_visible()
    screenshot(page, "2-conflicts")

    page.get_by_role("link", name="Groups 1").click()
    assert rows(page) == ["Team"]


def test_markup_in_a_name_is_shown_as_text(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    expect(page.get_by_text('<img src=x onerror=alert(1)> & "Co"')).to_be_visible()
    assert page.locator("img").count() == 0 and dialogs == []


def test_search_narrows_the_list(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    page.get_by_label("Search").fill("forward")
    page.get_by_role("button", name="Apply").click()
    assert rows(page) == ["Sales Forward"]
    expect(page.get_by_label("Search")).to_have_value("forward")
    screenshot(page, "3-search")

    page.get_by_label("Search").fill("no such thing")
    page.get_by_role("button", name="Apply").click()
    assert rows(page) == []
    expect(page.get_by_text("No conflicts match these filters.")).to_be_visible()


def test_the_property_filter_and_sorting_apply(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    page.get_by_label("Property").select_option("UserPrincipalName")
    page.get_by_role("button", name="Apply").click()
    assert rows(page) == ["Alice Walker"]
    page.get_by_label("Property").select_option("")
    page.get_by_label("Sort by").select_option("DisplayName")
    page.get_by_label("Order").select_option("Descending")
    page.get_by_role("button", name="Apply").click()
    assert rows(page) == ["Team", "Sales Forward", "Alice Walker", '<img src=x onerror=alert(1)> & "Co"']


def test_the_holder_link_leads_to_the_holders_page(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    row = page.locator("table.conflicts tbody.object", has_text="Alice Walker")
    row.get_by_role("link", name="Alice Wong").click()
    expect(page.get_by_role("heading", name="Alice Wong")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("alice@contoso.com")
    expect(page.get_by_text("None: this object holds every value it asked for.")).to_be_visible()
    screenshot(page, "5-holder")


def test_an_objects_page_shows_its_effective_values_and_entries(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    page.get_by_role("link", name="Team").first.click()
    expect(page.get_by_role("heading", name="Team")).to_be_visible()
    facts = page.locator(".facts")
    expect(facts).to_contain_text("SMTP:team@contoso.com")
    expect(facts).not_to_contain_text("alice@contoso.com")  # quarantined, so not effective
    entries = page.locator("table.entries tbody tr")
    expect(entries).to_have_count(1)
    expect(entries.first).to_contain_text("smtp:alice@contoso.com")
    screenshot(page, "4-object")
    entries.first.get_by_role("link", name="Alice Wong").click()
    expect(page.get_by_role("heading", name="Alice Wong")).to_be_visible()


def test_failed_exports_have_their_own_tab(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    page.get_by_role("link", name="Failed exports 1").click()
    expect(page.get_by_role("heading", name="Failed exports")).to_be_visible()
    failure = page.locator("table.failures tbody tr")
    expect(failure).to_have_count(1)
    expect(failure).to_contain_text("broken-group")
    expect(failure).to_contain_text("DataValidationFailed")
    screenshot(page, "6-failures")


def test_a_wrong_token_keeps_the_report_closed(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access, token="sgt_wrong")
    expect(page.get_by_role("alert")).to_contain_text("does not open this tenant's report")
    assert page.locator("table.conflicts").count() == 0


def test_signing_out_closes_the_report(page: Page, reported: Directory) -> None:
    sign_in(page, reported.access)
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"/report/{reported.access.name}")
    expect(page.get_by_role("heading", name="Open a tenant's error report")).to_be_visible()


def session_cookie(page: Page) -> Cookie:
    (cookie,) = [c for c in page.context.cookies() if c["name"] == REPORT_COOKIE]
    return cookie


def test_sign_in_browse_and_sign_out_through_the_forms(page: Page, reported: Directory) -> None:
    """The session a browser holds is an opaque id; signing out ends it, so a copy of it opens nothing."""
    access = reported.access
    sign_in(page, access)
    expect(page.get_by_role("heading", name="Duplicate attribute conflicts")).to_be_visible()
    cookie = session_cookie(page)
    assert cookie["value"] != access.token and access.token not in str(page.context.cookies())
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/report"
    assert not cookie["secure"], "plain http here; behind a TLS proxy the cookie is Secure"

    page.get_by_role("link", name="Failed exports 1").click()
    expect(page.get_by_role("heading", name="Failed exports")).to_be_visible()
    page.get_by_role("link", name="Conflicts").click()
    page.get_by_role("link", name="Team").first.click()
    expect(page.get_by_role("heading", name="Team")).to_be_visible()
    assert session_cookie(page)["value"] == cookie["value"], "browsing keeps the one session"

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Open a tenant's error report")).to_be_visible()
    assert REPORT_COOKIE not in {c["name"] for c in page.context.cookies()}
    screenshot(page, "7-signed-out")

    page.context.add_cookies([cookie])  # a copy taken before signing out
    page.goto(f"/report/{access.name}/failures")
    expect(page.get_by_role("heading", name="Open a tenant's error report")).to_be_visible()
    assert page.locator("table.failures").count() == 0


def test_a_sign_in_form_without_its_cookie_is_refused(page: Page, reported: Directory) -> None:
    """The CSRF check in a real browser: the form's token no longer matches a cookie, so 403."""
    page.goto(f"/report/{reported.access.name}")
    page.get_by_label("API token").fill(reported.access.token)
    page.context.clear_cookies(name=SIGN_IN_COOKIE)
    with page.expect_response("**/report/sign-in") as posted:
        page.get_by_role("button", name="Open report").click()
    assert posted.value.status == 403
    expect(page.get_by_role("heading", name="This form was refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("nobody was signed in")
    screenshot(page, "8-form-refused")
    page.get_by_role("link", name="Open the sign-in page").click()
    page.get_by_label("API token").fill(reported.access.token)
    page.get_by_role("button", name="Open report").click()
    expect(page.get_by_role("heading", name="Duplicate attribute conflicts")).to_be_visible()
