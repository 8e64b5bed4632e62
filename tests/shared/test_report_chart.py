"""The overview's chart (shared/reports/chart.py): well-formed SVG whose shapes are the figures."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.reports.chart import BARS_HEIGHT, BARS_TOP, LINE_HEIGHT, LINE_TOP, MAX_DAY_LABELS, Scale, conflict_chart

SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class Day:
    day: date
    open_at_end: int
    released: int


@st.composite
def series(draw: st.DrawFn, min_size: int = 0) -> list[Day]:
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 1, 1)))
    figures = draw(
        st.lists(st.tuples(st.integers(0, 2_000_000), st.integers(0, 100_000)), min_size=min_size, max_size=60)
    )
    return [Day(start + timedelta(days=i), opened, released) for i, (opened, released) in enumerate(figures)]


def parsed(days: list[Day]) -> ET.Element:
    return ET.fromstring(conflict_chart(days))


def shapes(root: ET.Element, tag: str, css: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if e.get("class") == css]


def close(a: float, b: float) -> bool:
    return abs(a - b) <= 0.011  # coordinates carry two decimals


@given(series())
def test_any_series_is_well_formed_svg_that_names_itself_and_fetches_nothing(days: list[Day]) -> None:
    root = parsed(days)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title_id, desc_id = root.get("aria-labelledby"), root.get("aria-describedby")
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.get("id") == title_id and title.text
    assert desc is not None and desc.get("id") == desc_id and desc.text
    for element in root.iter():
        assert element.tag.removeprefix(SVG) not in {"script", "image", "use", "foreignObject", "style", "a"}
        assert not {"style", "href", "{http://www.w3.org/1999/xlink}href"} & set(element.attrib), element.attrib
        assert not any(name.startswith("on") for name in element.attrib), element.attrib


@given(series(min_size=1))
def test_bar_heights_are_proportional_to_the_releases(days: list[Day]) -> None:
    bars = shapes(parsed(days), "rect", "chart-bar")
    assert [bar.get("data-day") for bar in bars] == [d.day.isoformat() for d in days]
    largest = max(d.released for d in days)
    tallest = max(float(bar.get("height", "")) for bar in bars)
    for bar, figures in zip(bars, days, strict=True):
        height = float(bar.get("height", ""))
        assert close(float(bar.get("y", "")) + height, BARS_TOP + BARS_HEIGHT), "every bar stands on the axis"
        if largest:
            assert close(height, tallest * figures.released / largest)
        else:
            assert height == 0
    if largest:
        assert BARS_HEIGHT * 0.4 <= tallest <= BARS_HEIGHT, "the scale neither clips nor squashes the bars"


@given(series(min_size=1))
def test_the_line_rises_with_the_open_conflicts(days: list[Day]) -> None:
    root = parsed(days)
    (line,) = shapes(root, "polyline", "chart-line")
    heights = [LINE_TOP + LINE_HEIGHT - float(point.split(",")[1]) for point in (line.get("points") or "").split()]
    assert len(heights) == len(days)
    largest = max(d.open_at_end for d in days)
    for height, figures in zip(heights, days, strict=True):
        assert close(height, max(heights) * figures.open_at_end / largest) if largest else height == 0
    points = shapes(root, "circle", "chart-point")
    assert [int(p.get("data-value", "")) for p in points] == [d.open_at_end for d in days]


@given(series(min_size=1))
def test_every_day_is_ticked_under_its_bar_and_the_newest_is_named(days: list[Day]) -> None:
    root = parsed(days)
    ticks = shapes(root, "line", "chart-day-tick")
    bars = shapes(root, "rect", "chart-bar")
    assert [t.get("data-day") for t in ticks] == [d.day.isoformat() for d in days]
    for tick, bar in zip(ticks, bars, strict=True):
        centre = float(bar.get("x", "")) + float(bar.get("width", "")) / 2
        assert close(float(tick.get("x1", "")), centre)
    labels = [label.text for label in shapes(root, "text", "chart-day-label")]
    assert 1 <= len(labels) <= MAX_DAY_LABELS
    assert labels[-1] == f"{days[-1].day:%b} {days[-1].day.day}"


@given(series(min_size=1))
def test_the_value_axes_reach_past_the_largest_figures(days: list[Day]) -> None:
    labels = shapes(parsed(days), "text", "chart-tick-label")
    in_line_panel = [float(t.get("y", "")) < BARS_TOP for t in labels]
    values = [int((t.text or "").replace(",", "")) for t in labels]
    open_ticks = [v for v, upper in zip(values, in_line_panel, strict=True) if upper]
    release_ticks = [v for v, upper in zip(values, in_line_panel, strict=True) if not upper]
    assert open_ticks == sorted(open_ticks) and open_ticks[0] == 0
    assert open_ticks[-1] >= max(d.open_at_end for d in days)
    assert release_ticks == sorted(release_ticks) and release_ticks[0] == 0
    assert release_ticks[-1] >= max(d.released for d in days)


@pytest.mark.parametrize(
    ("largest", "top", "step"), [(0, 1, 1), (1, 1, 1), (7, 8, 2), (10, 10, 2), (99, 100, 20), (123, 150, 50)]
)
def test_a_scale_counts_in_round_steps(largest: int, top: int, step: int) -> None:
    assert Scale.over(largest) == Scale(top, step)


def test_the_description_tells_the_trend_in_words() -> None:
    days = [Day(date(2026, 11, 1), 5, 0), Day(date(2026, 11, 2), 9, 2), Day(date(2026, 11, 3), 7, 3)]
    desc = parsed(days).find(f"{SVG}desc")
    assert desc is not None and desc.text == (
        "From 2026-11-01 to 2026-11-03, open conflicts went from 5 to 7 (highest 9, on 2026-11-02). "
        "5 released in all, most on 2026-11-03 (3)."
    )
