"""A conflict's history after it opened, went out in a report and was released: the same three events,
in Debian's Chromium on the conflict page and in `syncguard object show --history --json`.

The screenshot goes to test-artifacts/screenshots/conflict-history.png.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from redis import Redis

from shared.core.values import value_key
from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.reports.sending import send_error_reports
from shared.settings import Settings
from tests.api.browser import screenshot, sign_in
from tests.api.conftest import TenantAccess
from tests.conftest import ARTIFACTS, export_line
from tests.services import MailCatcher
from tests.shared.test_cli import syncguard_json

pytestmark = pytest.mark.integration


def test_open_report_release_shows_on_the_conflict_page_and_in_object_show(
    page: Page, make_access: Callable[..., TenantAccess], applier: ExportApplier, redis_client: Redis
) -> None:
    access = make_access(technical_contacts=("it@contoso.test",))
    name = access.name
    applier.apply(export_line(name, "alice", displayName="Alice Wong", userPrincipalName="alice@contoso.com"))
    applier.apply(export_line(name, "bob", sequence=7, displayName="Bob", userPrincipalName="alice@contoso.com"))
    with MailCatcher() as mail:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=mail.port, smtp_from="reports@syncguard.test")
        (sent,) = send_error_reports(settings, LockManager(redis_client), name)
        assert len(mail.for_recipient("it@contoso.test")) == 1 and sent.conflicts == 1
    let_go = applier.apply(
        export_line(name, "alice", sequence=2, displayName="Alice Wong", userPrincipalName="w@contoso.com")
    )
    assert let_go.freed_with_waiters == (value_key("alice@contoso.com"),)
    assert applier.release(name, value_key("alice@contoso.com")).status == "released"

    sign_in(page, access)
    page.goto(f"/report/{name}/conflict?object=bob&value=alice@contoso.com")
    history = page.locator("table.history tbody tr")
    expect(history).to_have_count(3)
    events = [history.nth(i).locator("td").nth(1).inner_text() for i in range(3)]
    assert events == ["Opened", "Reported", "Released"]
    expect(history.nth(0)).to_contain_text("by export sequence 7")
    expect(history.nth(1)).to_contain_text("in the error report no.")
    expect(history.nth(2)).to_contain_text("the value went to Bob")
    screenshot(page, ARTIFACTS / "screenshots", "conflict-history")

    shown = syncguard_json("object", "show", "--tenant", name, "--source-anchor", "bob", "--history")
    assert [(e["event"], e["propertyValue"]) for e in shown["conflictHistory"]] == [
        ("opened", "alice@contoso.com"),
        ("reported", "alice@contoso.com"),
        ("released", "alice@contoso.com"),
    ]
    assert shown["conflictHistory"][0]["sequence"] == 7 and shown["conflictHistory"][1]["reportId"] is not None
    assert shown["userPrincipalName"] == "alice@contoso.com", "bob holds the value now"
