"""The overview's chart: open conflicts at the end of each day (a line) and releases per day (bars).

Plain inline SVG, rendered on the server from plain figures: the report's pages run no script and
their content-security policy allows no inline style, so every colour and stroke comes from classes in
api/static/report.css and the markup carries only geometry. Two panels share the day axis, each with
its own scale: a tenant with 4,000 open conflicts and 3 releases a day would otherwise see no bars.
The SVG names itself (`<title>`, `<desc>`, role="img"); the page puts the same figures beside it in a
table for screen readers. Pure (pyproject's pure-core contract holds it to that): no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol
from xml.sax.saxutils import escape, quoteattr

WIDTH = 960
LEFT, RIGHT = 64, 20  # room for the value labels left of the axes
LINE_TOP, LINE_HEIGHT = 40, 150  # the open conflicts panel
BARS_TOP, BARS_HEIGHT = 240, 90  # the releases panel
DAY_LABELS_Y = BARS_TOP + BARS_HEIGHT + 20
HEIGHT = DAY_LABELS_Y + 14
MAX_DAY_LABELS = 10  # 30 dates side by side would overlap; every day still gets a tick


class DayFigures(Protocol):
    """What the chart needs of one day (shared.queries.conflict_history.ConflictDay has it)."""

    @property
    def day(self) -> date: ...

    @property
    def open_at_end(self) -> int: ...

    @property
    def released(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Scale:
    """A panel's value axis: 0 to `top` in `step`s, `top` a round number at or above the largest figure."""

    top: int
    step: int

    @classmethod
    def over(cls, largest: int) -> Scale:
        """Steps of 1, 2 or 5 times a power of ten, at most five of them."""
        if largest <= 0:
            return cls(1, 1)
        magnitude = 10 ** max(0, math.floor(math.log10(largest)) - 1)
        for multiple in (1, 2, 5, 10, 20):
            step = multiple * magnitude
            if math.ceil(largest / step) <= 5:
                return cls(step * math.ceil(largest / step), step)
        raise AssertionError(f"no step fits {largest}")  # 20 x 10^(digits-2) always does

    def ticks(self) -> range:
        return range(0, self.top + 1, self.step)

    def height(self, value: int, panel_height: int) -> float:
        return panel_height * value / self.top


def _n(value: float) -> str:
    """A coordinate with two decimals at most, so the markup stays small and diffable."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, css: str, content: str, anchor: str = "middle") -> str:
    return f'<text class="{css}" x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}">{escape(content)}</text>'


def _hline(x1: float, x2: float, y: float, css: str) -> str:
    return f'<line class="{css}" x1="{_n(x1)}" y1="{_n(y)}" x2="{_n(x2)}" y2="{_n(y)}"/>'


def _value_axis(scale: Scale, top: int, height: int, label: str) -> list[str]:
    parts = [_text(LEFT, top - 12, "chart-panel-label", label, anchor="start")]
    for tick in scale.ticks():
        y = top + height - scale.height(tick, height)
        parts.append(_hline(LEFT, WIDTH - RIGHT, y, "chart-grid" if tick else "chart-axis"))
        parts.append(_text(LEFT - 8, y + 4, "chart-tick-label", f"{tick:,}", anchor="end"))
    return parts


def describe(days: Sequence[DayFigures]) -> str:
    """The chart in one or two sentences, for its `<desc>`: where it starts and ends, the peaks."""
    if not days:
        return "No days to show."
    first, last = days[0], days[-1]
    peak = max(days, key=lambda d: (d.open_at_end, d.day))
    released = sum(d.released for d in days)
    busiest = max(days, key=lambda d: (d.released, d.day))
    text = (
        f"From {first.day.isoformat()} to {last.day.isoformat()}, open conflicts went from "
        f"{first.open_at_end:,} to {last.open_at_end:,} (highest {peak.open_at_end:,}, on {peak.day.isoformat()}). "
        f"{released:,} released in all"
    )
    if released:
        text += f", most on {busiest.day.isoformat()} ({busiest.released:,})"
    return text + "."


def conflict_chart(days: Sequence[DayFigures], *, chart_id: str = "conflict-chart") -> str:
    """The SVG of `days`, oldest first, one column each; `chart_id` prefixes its ids (unique on a page)."""
    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    open_scale = Scale.over(max((d.open_at_end for d in days), default=0))
    release_scale = Scale.over(max((d.released for d in days), default=0))
    column = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    bar_width = max(column * 0.6, 1.0)
    label_every = max(1, math.ceil(len(days) / MAX_DAY_LABELS))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id={quoteattr(chart_id)} '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{title_id}" aria-describedby="{desc_id}">',
        f'<title id="{title_id}">Open conflicts and releases per day</title>',
        f'<desc id="{desc_id}">{escape(describe(days))}</desc>',
    ]
    parts += _value_axis(open_scale, LINE_TOP, LINE_HEIGHT, "Open conflicts at the end of the day")
    parts += _value_axis(release_scale, BARS_TOP, BARS_HEIGHT, "Releases per day")

    points: list[tuple[float, float]] = []
    bottom = BARS_TOP + BARS_HEIGHT
    for index, figures in enumerate(days):
        centre = LEFT + column * (index + 0.5)
        bar_height = release_scale.height(figures.released, BARS_HEIGHT)
        when = figures.day.isoformat()
        parts.append(
            f'<rect class="chart-bar" data-day="{when}" data-value="{figures.released}" '
            f'x="{_n(centre - bar_width / 2)}" y="{_n(bottom - bar_height)}" width="{_n(bar_width)}" '
            f'height="{_n(bar_height)}"><title>{when}: {figures.released:,} released</title></rect>'
        )
        points.append((centre, LINE_TOP + LINE_HEIGHT - open_scale.height(figures.open_at_end, LINE_HEIGHT)))
        parts.append(
            f'<line class="chart-day-tick" data-day="{when}" x1="{_n(centre)}" y1="{_n(bottom)}" '
            f'x2="{_n(centre)}" y2="{_n(bottom + 5)}"/>'
        )
        if (len(days) - 1 - index) % label_every == 0:  # counted from the newest day, which is always named
            parts.append(_text(centre, DAY_LABELS_Y, "chart-day-label", f"{figures.day:%b} {figures.day.day}"))
    if points:
        parts.append(f'<polyline class="chart-line" points="{" ".join(f"{_n(x)},{_n(y)}" for x, y in points)}"/>')
    for (x, y), figures in zip(points, days, strict=True):
        when = figures.day.isoformat()
        parts.append(
            f'<circle class="chart-point" data-day="{when}" data-value="{figures.open_at_end}" cx="{_n(x)}" '
            f'cy="{_n(y)}" r="3"><title>{when}: {figures.open_at_end:,} open</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)
