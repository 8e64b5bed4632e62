"""Aligned plain-text tables for the command line's human output.

Column widths follow the content up to a maximum, so one long value (a failure message, a list of
proxy addresses) cannot push every other column off the screen; the cut is shown with an ellipsis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from shared.core.timestamps import iso_utc

MAX_CELL_WIDTH = 60
ELLIPSIS = "…"
GAP = "  "
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def cell_text(value: object) -> str:
    """One cell on one line: a newline or tab inside a value would break the alignment."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = iso_utc(value) or ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(cell_text(item) for item in value)
    else:
        text = str(value)
    return _CONTROL.sub(" ", text)


def truncate(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - len(ELLIPSIS), 0)] + ELLIPSIS


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], max_width: int = MAX_CELL_WIDTH) -> str:
    """Headers, a rule, then one line per row; columns as wide as their widest cell (capped)."""
    cells = [[truncate(cell_text(value), max_width) for value in row] for row in rows]
    for row in cells:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns")
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return GAP.join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    lines.extend(line(row) for row in cells)
    return "\n".join(lines)
