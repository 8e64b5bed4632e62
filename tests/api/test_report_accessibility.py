"""The web report is usable without a mouse and passes axe-core, in Debian's Chromium.

axe-core (bundled by axe-playwright-python) runs over every page of the report, as a signed-in
person sees it; a violation of impact serious or critical fails, with its rule, the nodes and what
axe says to fix. The keyboard tests press Tab through a page as a person does and check where the
focus goes and that it can be seen. Each page's screenshot goes to test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect
from redis import Redis

from api.report_session import SIGN_IN_COOKIE
from shared.exports.applier import ExportApplier
from tests.api.browser import sign_in
from tests.api.conftest import ApiServer
from tests.api.history_scenario import History, apply_all, build_history
from tests.api.test_report_overview import SCREENSHOTS, drop_report_tenant, make_report_tenant, screenshot
from tests.conftest import ARTIFACTS, export_line

pytestmark = pytest.mark.integration

BLOCKING = ("serious", "critical")
WAITING_FOR_ONE_UPN = 30  # with the scenario's three, more conflicted objects than one page (25) shows
AXE = Axe()


@pytest.fixture(scope="module")
def world(api_server: ApiServer, applier: ExportApplier, redis_client: Redis) -> Iterator[History]:
    """The overview's month of history, and enough conflicts for a second page."""
    access = make_report_tenant("a11y")
    built = build_history(applier, access)
    name = access.name
    lines = [export_line(name, "shared-holder", displayName="Shared Holder", userPrincipalName="shared@contoso.com")]
    lines += [
        export_line(name, f"wait-{n:02d}", displayName=f"Waiting {n:02d}", userPrincipalName="shared@contoso.com")
        for n in range(WAITING_FOR_ONE_UPN)
    ]
    apply_all(applier, lines[:1])
    apply_all(applier, lines[1:])
    yield built
    drop_report_tenant(access)


def signed_in(page: Page, world: History, path: str = "") -> None:
    sign_in(page, world.access)
    expect(page.get_by_role("heading", name="Duplicate attribute conflicts")).to_be_visible()
    if path:
        page.goto(f"/report/{world.name}{path}")


def follow_compare_link(of: str) -> Callable[[Page, History], None]:
    """The side-by-side page of a conflict, reached from its row as a person does."""

    def visit(page: Page, world: History) -> None:
        signed_in(page, world, "?q=" + of.replace(" ", "+"))
        page.locator("table.conflicts tbody.object", has_text=of).locator("a.compare").first.click()
        expect(page.locator("main h1")).to_be_visible()

    return visit


def refused_form(page: Page, world: History) -> None:
    page.goto(f"/report?tenant={world.name}")
    page.get_by_label("API token").fill(world.access.token)
    page.context.clear_cookies(name=SIGN_IN_COOKIE)
    page.get_by_role("button", name="Open report").click()
    expect(page.get_by_role("heading", name="This form was refused")).to_be_visible()


def wrong_token(page: Page, world: History) -> None:
    sign_in(page, world.access, token="sgt_wrong")
    expect(page.get_by_role("alert")).to_be_visible()


PAGES: dict[str, Callable[[Page, History], None]] = {
    "sign-in": lambda page, world: page.goto(f"/report?tenant={world.name}"),
    "sign-in-wrong-token": wrong_token,
    "form-refused": refused_form,
    "conflicts": lambda page, world: signed_in(page, world),
    "conflicts-second-page": lambda page, world: (
        signed_in(page, world),
        page.get_by_role("link", name="Next").click(),
    ),
    "conflicts-filtered-to-groups": lambda page, world: signed_in(page, world, "?type=Group&property=ProxyAddresses"),
    "conflicts-none-match": lambda page, world: signed_in(page, world, "?q=nothing+matches+this"),
    "object": lambda page, world: signed_in(page, world, "/objects/team"),
    "object-not-found": lambda page, world: signed_in(page, world, "/objects/no-such-object"),
    "conflict-upn-user-and-user": follow_compare_link("Alice Walker"),
    "conflict-proxy-group-and-user": follow_compare_link("Team"),
    "overview": lambda page, world: signed_in(page, world, "/overview"),
    "failed-exports": lambda page, world: signed_in(page, world, "/failures"),
}


def blocking(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def described(violations: list[dict[str, Any]]) -> str:
    """Each violation's rule, impact and help, then every node it found with axe's advice."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} - {violation['helpUrl']}")
        for node in violation["nodes"]:
            lines.append(f"    {', '.join(map(str, node['target']))}: {node['html']}")
            lines.append("        " + (node.get("failureSummary") or "").replace("\n", "\n        "))
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(PAGES))
def test_axe_finds_no_serious_or_critical_violation(page: Page, world: History, name: str) -> None:
    PAGES[name](page, world)
    page.wait_for_load_state()
    results = AXE.run(page).response
    (ARTIFACTS / "axe").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "axe" / f"{name}.json").write_text(json.dumps(results["violations"], indent=2))
    screenshot(page, name)
    found = blocking(results)
    if found:
        print(described(found))
    assert not found, f"axe on {name} ({page.url}):\n{described(found)}"
    assert results["testEngine"]["version"].startswith("4."), "axe-core itself ran"


def test_axe_here_does_catch_what_it_should(page: Page, world: History) -> None:
    """The check can fail: a field without a label, an image without text and an empty button, put
    into a real report page, are each a blocking violation, reported with the node."""
    signed_in(page, world, "/overview")
    page.evaluate(
        """() => document.querySelector('main').insertAdjacentHTML('beforeend',
             '<input type="text" name="unlabelled"><img src="/nothing.png"><button type="button"></button>')"""
    )
    found = blocking(AXE.run(page).response)
    assert {"label", "image-alt", "button-name"} <= {v["id"] for v in found}
    assert 'name="unlabelled"' in described(found)


@dataclass(frozen=True)
class Focused:
    """Where the focus is after a Tab: in which part of the page, on what, and how it shows."""

    zone: str
    tag: str
    text: str
    href: str | None
    outline_style: str
    outline_width: float
    index: int  # among the page's focusable elements, in document order


# How a person tells focusable things apart: a control by its field name, a link or button by its text.
LABEL_OF = """el => (el.getAttribute('aria-label')
  || (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) ? el.name : el.innerText) || '').trim()"""
FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea"
FOCUSED = f"""(zones) => {{
  const el = document.activeElement;
  const zone = Object.entries(zones).find(([, selector]) => el.closest(selector));
  const style = getComputedStyle(el);
  return {{zone: zone ? zone[0] : 'other', tag: el.tagName.toLowerCase(), text: ({LABEL_OF})(el),
          href: el.getAttribute('href'), outline_style: style.outlineStyle,
          outline_width: parseFloat(style.outlineWidth),
          index: [...document.querySelectorAll('{FOCUSABLE}')].indexOf(el)}};
}}"""


def tab_through(page: Page, zones: dict[str, str], until: str, limit: int = 250) -> list[Focused]:
    """Press Tab until the focus leaves the `until` zone after reaching it (or the page ends)."""
    seen: list[Focused] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = Focused(**page.evaluate(FOCUSED, zones))
        if focused.tag == "body" or (seen and seen[-1].zone == until and focused.zone != until):
            break
        seen.append(focused)
    return seen


def zones_in_order(seen: list[Focused]) -> list[str]:
    order: list[str] = []
    for focused in seen:
        if focused.zone != "other" and (not order or order[-1] != focused.zone):
            order.append(focused.zone)
    return order


def focusable_in(page: Page, selector: str) -> list[str]:
    labels: list[str] = page.locator(selector).locator(FOCUSABLE).evaluate_all(f"els => els.map({LABEL_OF})")
    return labels


def assert_every_focus_is_visible(seen: list[Focused]) -> None:
    hidden = [f for f in seen if f.outline_style == "none" or f.outline_width < 2]
    assert not hidden, f"focus without a visible outline: {hidden}"
    indexes = [f.index for f in seen]
    assert indexes == sorted(indexes), "the focus moves down the page in document order"


def test_a_skip_link_comes_first_and_jumps_to_the_content(page: Page, world: History) -> None:
    signed_in(page, world)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link shows when it has the focus"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null"), "the next stop is in the content"


def test_tab_reaches_the_filters_then_every_rows_link_then_the_paging_links(page: Page, world: History) -> None:
    signed_in(page, world)
    zones = {"filters": "form.filters", "rows": "table.conflicts", "paging": "nav.pager"}
    seen = tab_through(page, zones, until="paging")
    assert zones_in_order(seen) == ["filters", "rows", "paging"]
    in_zone = {zone: [f.text for f in seen if f.zone == zone] for zone in zones}
    assert in_zone["filters"] == focusable_in(page, "form.filters")
    assert {"q", "property", "sort", "dir", "Apply"} <= set(in_zone["filters"])
    assert in_zone["rows"] == focusable_in(page, "table.conflicts"), "every link of every row, in order"
    assert len(in_zone["rows"]) >= 25, "at least the link of each object on the page"
    assert in_zone["paging"] == ["Next ›"]
    assert_every_focus_is_visible(seen)
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")  # back from past the end, over Next, to the last row's last link
    assert page.evaluate("document.activeElement.closest('table.conflicts') !== null")
    screenshot(page, "conflicts-keyboard-focus-on-a-row")


def test_tab_goes_through_the_overview_sections_in_order(page: Page, world: History) -> None:
    signed_in(page, world, "/overview")
    zones = {
        "sections": "nav.tabs",
        "open-conflicts": "section[aria-labelledby=open-conflicts]",
        "failed-exports": "section[aria-labelledby=failed-exports]",
    }
    seen = tab_through(page, zones, until="failed-exports")
    assert zones_in_order(seen) == ["sections", "open-conflicts", "failed-exports"]
    assert [f.text for f in seen if f.zone == "sections"][:3] == ["Conflicts", "Overview", "Failed exports 3"]
    assert [f.text for f in seen if f.zone == "open-conflicts"] == focusable_in(page, zones["open-conflicts"])
    assert [f.text for f in seen if f.zone == "failed-exports"] == focusable_in(page, zones["failed-exports"])
    assert_every_focus_is_visible(seen)
    page.keyboard.press("Shift+Tab")
    screenshot(page, "overview-keyboard-focus")
    assert SCREENSHOTS.joinpath("overview-keyboard-focus.png").exists()
