"""One conflict side by side (api/report_conflict.py): the waiter and the holder, the contested value
marked on both, what to do, and the conflict's history; in Debian's Chromium and over plain HTTP.

Screenshots of the UPN and the proxy conflict go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from html import unescape

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect
from redis import Redis
from sqlalchemy import delete

from shared.exports.applier import ExportApplier
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.browser import screenshot as shoot
from tests.api.browser import sign_in
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import Directory, build_directory
from tests.api.test_report_pages import browser as http_browser
from tests.conftest import ARTIFACTS, export_line

pytestmark = pytest.mark.integration

SCREENSHOTS = ARTIFACTS / "screenshots"
COMPARE_LINK = re.compile(r'<a class="compare" href="([^"]+)"')


def screenshot(page: Page, name: str) -> None:
    shoot(page, SCREENSHOTS, name)


@pytest.fixture(scope="module")
def directory(api_server: ApiServer, workers: object, redis_client: Redis) -> Iterator[Directory]:
    """tests/api/scenario.py over HTTP, applied by real workers: Alice Walker wants Alice Wong's UPN, the
    group Team wants her address smtp:alice@contoso.com, the contact Sales Forward the group Sales's."""
    name = f"pair-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
    with httpx.Client(base_url=api_server.url, timeout=60) as http:
        built = build_directory(http, redis_client, TenantAccess(tenant, secret))
    yield built
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == name))


def column(page: Page, side: str) -> Locator:
    return page.locator(f"table.pair td.{side}")


def marked(page: Page, side: str) -> list[str]:
    """The values marked as contested in one column (waiter or holder), top to bottom."""
    return column(page, side).locator("mark").all_inner_texts()


def cell(page: Page, row: str, side: str) -> Locator:
    return page.locator("table.pair tbody tr", has=page.get_by_role("rowheader", name=row, exact=True)).locator(
        f"td.{side}"
    )


def test_a_upn_conflict_side_by_side_marks_the_upn_on_both_sides(page: Page, directory: Directory) -> None:
    sign_in(page, directory.access)
    row = page.locator("table.conflicts tbody.object", has_text="Alice Walker")
    row.get_by_role("link", name="Side by side").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("UPN conflict over Alice@contoso.com")

    assert marked(page, "waiter") == ["Alice@contoso.com"], "the UPN as Alice Walker asked for it"
    assert {text.lower() for text in marked(page, "holder")} == {"alice@contoso.com", "smtp:alice@contoso.com"}
    expect(cell(page, "Effective UPN", "holder").locator("mark")).to_have_text("alice@contoso.com")
    expect(cell(page, "Effective UPN", "waiter")).to_contain_text(f"@{directory.access.name}.onmicrosoft.com")
    expect(cell(page, "Effective UPN", "waiter").locator("mark")).to_have_count(0)  # a placeholder meanwhile
    expect(cell(page, "Display name", "waiter")).to_have_text("Alice Walker")
    expect(cell(page, "Display name", "holder")).to_have_text("Alice Wong")
    expect(cell(page, "Class", "waiter")).to_have_text("User")
    expect(cell(page, "Class", "holder")).to_have_text("User")
    expect(cell(page, "Source anchor", "waiter")).to_have_text("bob")
    expect(cell(page, "Source anchor", "holder")).to_have_text("alice")
    expect(cell(page, "Since", "waiter")).to_contain_text("Asked for it 20")
    expect(cell(page, "Since", "holder")).to_contain_text("Has held it since 20")

    advice = page.get_by_role("region", name="What to do")
    expect(advice).to_contain_text("Alice Walker (source anchor bob) asks for the UPN Alice@contoso.com")
    expect(advice).to_contain_text("which Alice Wong (source anchor alice) holds")
    expect(advice).to_contain_text("gets it within a second")
    history = page.locator("table.history tbody tr")
    expect(history.first).to_contain_text("Opened")
    screenshot(page, "conflict-upn")

    cell(page, "Display name", "holder").get_by_role("link", name="Alice Wong").click()
    expect(page.get_by_role("heading", name="Alice Wong")).to_be_visible()


def test_a_proxy_conflict_between_a_group_and_a_user_marks_the_address_on_both_sides(
    page: Page, directory: Directory
) -> None:
    sign_in(page, directory.access)
    page.get_by_role("link", name="Team", exact=True).click()
    expect(page.get_by_role("heading", name="Team")).to_be_visible()
    page.locator("table.entries").get_by_role("link", name="Side by side").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Proxy address conflict over smtp:alice@contoso.com")

    expect(cell(page, "Class", "waiter")).to_have_text("Group")
    expect(cell(page, "Class", "holder")).to_have_text("User")
    assert marked(page, "waiter") == ["smtp:alice@contoso.com"], "asked for, and quarantined"
    expect(cell(page, "Effective proxy addresses", "waiter")).to_have_text("SMTP:team@contoso.com")
    expect(cell(page, "Effective proxy addresses", "holder").locator("mark")).to_have_text("SMTP:alice@contoso.com")
    expect(cell(page, "Effective UPN", "holder").locator("mark")).to_have_text("alice@contoso.com")
    expect(cell(page, "Effective UPN", "waiter")).to_have_text("—")  # a group has no UPN
    expect(page.get_by_role("region", name="What to do")).to_contain_text(
        "Team (source anchor team) asks for the proxy address smtp:alice@contoso.com, which Alice Wong "
        "(source anchor alice) holds. Change the proxy address on-premises on one of the two"
    )
    screenshot(page, "conflict-proxy")


def compare_links(html: str) -> list[str]:
    return [unescape(href) for href in COMPARE_LINK.findall(html)]


def test_every_conflict_row_of_the_list_and_of_the_object_page_links_its_pair(
    api_server: ApiServer, directory: Directory
) -> None:
    access = directory.access
    with http_browser(api_server, access) as http:
        listed = compare_links(http.get(f"/report/{access.name}").text)
        assert len(listed) == 3, "Alice Walker, Team and Sales Forward wait for one value each"
        headings = set()
        for href in listed:
            shown = http.get(href)
            assert shown.status_code == 200, href
            headings.add(unescape(re.search(r"<h1>(.*?)</h1>", shown.text, re.S).group(1)))  # type: ignore[union-attr]
        assert {re.sub(r"<[^>]+>", "", h) for h in headings} == {
            "UPN conflict over Alice@contoso.com",
            "Proxy address conflict over smtp:alice@contoso.com",
            "Proxy address conflict over SMTP:sales@contoso.com",
        }
        on_object_page = compare_links(http.get(f"/report/{access.name}/objects/salesfwd").text)
        assert on_object_page == [href for href in listed if "salesfwd" in href]


def test_no_such_conflict_is_404(api_server: ApiServer, directory: Directory) -> None:
    access = directory.access
    with http_browser(api_server, access) as http:
        for params in (
            {"object": "nobody", "value": "alice@contoso.com"},
            {"object": "bob", "value": "someone-else@contoso.com"},
            {"object": "alice", "value": "alice@contoso.com"},  # the holder waits for nothing
            {"object": "bob"},
        ):
            response = http.get(f"/report/{access.name}/conflict", params=params)
            assert response.status_code == 404, params
            assert "has no conflict of the object" in response.text


@pytest.fixture
def released_meanwhile(
    applier: ExportApplier, make_access: Callable[..., TenantAccess]
) -> tuple[TenantAccess, ExportApplier]:
    """Bob waits for Alice's UPN, and Alice has let go of it: applied in-process, so the fast release a
    worker would send after the commit has not happened yet and Bob still waits."""
    access = make_access()
    name = access.name
    holder = applier.apply(export_line(name, "alice", displayName="Alice Wong", userPrincipalName="alice@contoso.com"))
    waiter = applier.apply(export_line(name, "bob", displayName="Bob", userPrincipalName="alice@contoso.com"))
    assert holder.status == waiter.status == "applied" and waiter.quarantined
    let_go = applier.apply(
        export_line(name, "alice", sequence=2, displayName="Alice Wong", userPrincipalName="wong@contoso.com")
    )
    assert let_go.status == "applied" and let_go.freed_with_waiters
    return access, applier


def test_with_the_holder_gone_the_page_says_so_and_shows_the_waiter(
    api_server: ApiServer, released_meanwhile: tuple[TenantAccess, ExportApplier]
) -> None:
    access, applier = released_meanwhile
    with http_browser(api_server, access) as http:
        waiting = http.get(f"/report/{access.name}/conflict", params={"object": "bob", "value": "alice@contoso.com"})
        assert waiting.status_code == 200
        text = unescape(re.sub(r"\s+", " ", waiting.text))
        assert 'No object holds <span class="mono">alice@contoso.com</span> any more' in text
        assert "No object holds it now" in text
        assert '<td class="waiter mono">bob</td>' in text
        assert "<mark>alice@contoso.com</mark>" in text
        assert "no object holds it any more: Bob gets it within a second" in text

        assert applier.release(access.name, "alice@contoso.com").status == "released"
        over = http.get(f"/report/{access.name}/conflict", params={"object": "bob", "value": "alice@contoso.com"})
        assert over.status_code == 200, "the page stays, with the history of how it ended"
        text = unescape(re.sub(r"\s+", " ", over.text))
        assert "This conflict is over: Bob no longer waits for" in text
        assert "What to do" not in text
        events = re.findall(r'<td class="when">.*?</td>\s*<td>(\w+)</td>', over.text, re.S)
        assert events == ["Opened", "Released"], "newest last"
