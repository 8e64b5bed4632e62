"""The overview page in Chromium: its counts and its chart equal what the database holds.

The history is written by the real apply path today (tests/api/history_scenario.py) and by SQL for
the days before; the expected figures are counted from the tables with SQL of their own, not with
the report's query. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect
from redis import Redis
from sqlalchemy import delete, select

from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.reports.sending import send_error_reports
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import FailedExport, SentReport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.browser import screenshot as shoot
from tests.api.browser import sign_in
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.history_scenario import (
    History,
    build_history,
    days_counted_in_sql,
    failures_by_code_in_sql,
    open_entries_in_sql,
)
from tests.api.test_report_pages import browser as http_browser
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.integration

SCREENSHOTS = ARTIFACTS / "screenshots"
SVG = "{http://www.w3.org/2000/svg}"


def make_report_tenant(prefix: str) -> TenantAccess:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(
            session,
            TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com", technical_contacts=("it@contoso.test",)),
        )
        secret = issue_token(session, tenant).secret
    return TenantAccess(tenant, secret)


def drop_report_tenant(access: TenantAccess) -> None:
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == access.name))
        session.execute(delete(FailedExport).where(FailedExport.tenant == access.name))


@pytest.fixture(scope="module")
def history(api_server: ApiServer, applier: ExportApplier, redis_client: Redis) -> Iterator[History]:
    """A month of history, and one error report sent (to the log: no relay configured)."""
    access = make_report_tenant("overview")
    built = build_history(applier, access)
    (sent,) = send_error_reports(Settings(smtp_host=None), LockManager(redis_client), access.name)
    assert sent.conflicts == 3 and sent.delivered_to == "log", sent
    yield built
    drop_report_tenant(access)


def screenshot(page: Page, name: str) -> None:
    shoot(page, SCREENSHOTS, name)


def open_overview(page: Page, history: History) -> None:
    sign_in(page, history.access)
    page.get_by_role("navigation", name="Report sections").get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")


def test_the_charts_figures_equal_counts_read_from_the_database(page: Page, history: History) -> None:
    open_overview(page, history)
    screenshot(page, "overview-counts-and-chart")
    expected = days_counted_in_sql(history)
    assert len(expected) == 30 and expected[-1].day == history.today

    table = [row.locator("th, td").all_inner_texts() for row in page.locator("#conflict-figures tbody tr").all()]
    assert [(day, int(open_), int(released)) for day, open_, _, released, _ in table] == [
        (d.day.isoformat(), d.open_at_end, d.released) for d in expected
    ]
    svg = ET.fromstring(page.locator("svg.chart").evaluate("svg => svg.outerHTML"))
    bars = [e for e in svg.iter(f"{SVG}rect") if e.get("class") == "chart-bar"]
    points = [e for e in svg.iter(f"{SVG}circle") if e.get("class") == "chart-point"]
    assert [(b.get("data-day"), int(b.get("data-value", ""))) for b in bars] == [
        (d.day.isoformat(), d.released) for d in expected
    ]
    assert [(p.get("data-day"), int(p.get("data-value", ""))) for p in points] == [
        (d.day.isoformat(), d.open_at_end) for d in expected
    ]
    # Today, from the apply path: five opened, Dan got Carl's address, Erin stopped asking for Sales'.
    today = table[-1]
    assert today == [history.today.isoformat(), "3", "5", "1", "1"]
    assert int(today[1]) == sum(open_entries_in_sql(history).values()), "the line ends at the entries on file"
    assert sum(d.released for d in expected) == 8, "seven releases written in SQL fall in the window, one today"


def count_cells(page: Page) -> dict[str, list[str]]:
    """The open conflicts table, a row header to its cells."""
    rows = page.locator("table.counts").first.locator("tbody tr, tfoot tr").all()
    return {row.locator("th").inner_text(): row.locator("td").all_inner_texts() for row in rows}


def test_the_overview_counts_open_conflicts_by_type_and_property(page: Page, history: History) -> None:
    open_overview(page, history)
    in_sql = open_entries_in_sql(history)
    assert in_sql == {
        ("User", "UserPrincipalName"): 1,
        ("Group", "ProxyAddresses"): 1,
        ("Contact", "ProxyAddresses"): 1,
    }
    cells = count_cells(page)
    for label, object_type in (("Users", "User"), ("Groups", "Group"), ("Contacts", "Contact")):
        upn, proxy = in_sql.get((object_type, "UserPrincipalName"), 0), in_sql.get((object_type, "ProxyAddresses"), 0)
        assert [re.sub(r"\D", "", c) for c in cells[label]] == [str(upn), str(proxy), str(upn + proxy)], label
    assert cells["All"] == ["1", "2", "3"]

    page.get_by_role("link", name="1 Users waiting for a UPN").click()
    expect(page.get_by_role("heading", name="Duplicate attribute conflicts")).to_be_visible()
    assert page.locator("table.conflicts tbody.object th").all_inner_texts() == ["Alice Walker"]


def test_the_overview_counts_failed_exports_by_code_and_says_when_the_last_report_went(
    page: Page, history: History
) -> None:
    open_overview(page, history)
    section = page.get_by_role("region", name="Failed exports")
    rows = section.locator("table.counts tbody tr").all()
    shown = {row.locator("th").inner_text(): int(row.locator("td").inner_text()) for row in rows}
    assert shown == failures_by_code_in_sql(history) == {"DataValidationFailed": 2, "LargeObject": 1}
    assert [row.locator("th").inner_text() for row in rows] == ["DataValidationFailed", "LargeObject"]
    with transaction() as session:
        sent_at = session.scalar(select(SentReport.sent_at).where(SentReport.tenant_id == history.access.tenant.id))
    assert sent_at is not None
    expect(page.get_by_role("region", name="Error reports")).to_contain_text(
        f"went out on {sent_at:%Y-%m-%d %H:%M} UTC to it@contoso.test, with 3 new conflicts and 3 failed exports"
    )


def test_the_overview_runs_no_script_and_loads_nothing_but_its_stylesheet(page: Page, history: History) -> None:
    """The content-security policy holds: nothing blocked, nothing fetched, no inline style to allow."""
    fetched: list[str] = []
    console: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.on("console", lambda message: console.append(message.text))
    open_overview(page, history)
    assert {re.sub(r"^https?://[^/]+", "", url).split("?")[0] for url in fetched} <= {
        "/report",
        "/report/sign-in",
        f"/report/{history.name}",
        f"/report/{history.name}/overview",
        "/static/report.css",
    }
    assert page.locator("script, [style], img, iframe, object, embed").count() == 0
    assert not [line for line in console if "Content Security Policy" in line], console
    svg = page.locator("svg.chart")
    expect(svg).to_have_attribute("role", "img")
    expect(svg).to_have_accessible_name("Open conflicts and releases per day")
    expect(svg).to_have_accessible_description(re.compile(r"^From \d{4}-\d\d-\d\d to .* released in all"))
    bar_colour = page.locator("svg.chart rect.chart-bar").first.evaluate("bar => getComputedStyle(bar).fill")
    assert bar_colour == "rgb(4, 120, 87)", "the bars take their colour from report.css"


def test_the_overview_needs_a_session_of_its_tenant(api_server: ApiServer, history: History) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as anonymous:
        response = anonymous.get(f"/report/{history.name}/overview")
    assert response.status_code == 303 and "next=%2Freport%2F" in response.headers["location"]
    other = make_report_tenant("other")
    try:
        with http_browser(api_server, other) as http:
            response = http.get(f"/report/{history.name}/overview")
            assert response.status_code == 404 and "conflict-figures" not in response.text
            own = http.get(f"/report/{other.name}/overview")
    finally:
        drop_report_tenant(other)
    assert own.status_code == 200
    assert "default-src 'none'" in own.headers["content-security-policy"]
    assert "No error report has gone out for this tenant yet." in own.text
    assert re.findall(r'<td class="num">(\d+)</td>\s*</tr>\s*</tfoot>', own.text) == ["0"]
