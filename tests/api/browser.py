"""Debian's Chromium through Playwright, for the web report's tests: one browser a module, a fresh
page a test (signed out, a laptop's viewport, the live API as its base URL), sign-in, screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

if TYPE_CHECKING:
    from tests.api.conftest import ApiServer, TenantAccess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: ./scripts/test installs it (as root)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(chromium: Browser, api_server: ApiServer) -> Iterator[Page]:
    context = chromium.new_context(viewport=LAPTOP, base_url=api_server.url)
    yield context.new_page()
    context.close()


def sign_in(page: Page, access: TenantAccess, token: str | None = None) -> None:
    page.goto(f"/report/{access.name}")
    expect(page.get_by_role("heading", name="Open a tenant's error report")).to_be_visible()
    expect(page.get_by_label("Tenant")).to_have_value(access.name)
    page.get_by_label("API token").fill(token or access.token)
    page.get_by_role("button", name="Open report").click()


def screenshot(page: Page, folder: Path, name: str) -> None:
    """The whole page, for a person to look at: `folder/name.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
