"""The web report's CSV downloads: the conflicts list and the failed exports, as filtered and ordered.

Streamed a keyset page at a time, each page in a short transaction of its own, so a download of a
million conflicts holds one page in memory and no transaction open while the browser reads; rows
that come and go meanwhile are listed or not, as on the pages, never twice. Every text cell that a
spreadsheet would take for a formula (starting with = + - @, a tab or a carriage return) gets a
leading apostrophe (OWASP's advice on CSV injection): display names and values come from on-premises
and from anyone who can post an export. The file starts with a UTF-8 byte order mark, which is how
Excel knows the encoding; `csv` readers opened with `utf-8-sig` skip it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.database import db_session
from api.report import ConflictQuery, report_tenant
from api.report_failures import FailuresQuery
from api.services import services
from shared.core.timestamps import iso_utc
from shared.queries.conflict_pages import PagePosition
from shared.queries.conflict_rows import conflict_rows
from shared.queries.failure_pages import FailurePosition, list_failure_page
from shared.reports.advice import failure_advice
from shared.store.engine import transaction
from shared.store.tables import Tenant

router = APIRouter(prefix="/report", include_in_schema=False)

DOWNLOAD_PAGE = 500  # objects (conflicts) or rows (failures) read per transaction
CONFLICT_COLUMNS = (
    "Waiter",
    "WaiterSourceAnchor",
    "WaiterType",
    "Holder",
    "HolderSourceAnchor",
    "HolderObjectId",
    "Property",
    "Value",
    "Occurred",
    "Reported",
)
FAILURE_COLUMNS = (
    "SourceAnchor",
    "ObjectType",
    "ErrorCode",
    "Message",
    "WhatToDo",
    "FirstFailed",
    "LastFailed",
    "Attempts",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | datetime | None
# The session that checks the browser's sign-in ends before the rows stream (FastAPI's "function"
# scope): a download of any length holds no connection idle in a transaction meanwhile.
SignInSession = Annotated[Session, Depends(db_session, scope="function")]


def safe_cell(value: Cell) -> str:
    """The cell as text a spreadsheet shows as text: never a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_utc(value) or ""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _csv_text(rows: Iterable[Iterable[Cell]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def _download(lines: Iterator[str], filename: str) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _conflict_lines(database_url: str, tenant: Tenant, wanted: ConflictQuery) -> Iterator[str]:
    yield "\ufeff" + _csv_text([CONFLICT_COLUMNS])
    after: PagePosition | None = None
    while True:
        with transaction(database_url) as session:
            rows, after = conflict_rows(
                session,
                tenant,
                wanted.error_filter(),
                sort_field=wanted.sort,
                sort_direction=wanted.direction,
                limit=DOWNLOAD_PAGE,
                after=after,
            )
        yield _csv_text(
            (
                r.waiter_display_name,
                r.waiter_source_anchor,
                r.waiter_type,
                r.holder_display_name,
                r.holder_source_anchor,
                r.holder_object_id,
                r.property_name,
                r.property_value,
                r.occurred,
                r.reported,
            )
            for r in rows
        )
        if after is None:
            return


def _failure_lines(database_url: str, tenant: Tenant, wanted: FailuresQuery) -> Iterator[str]:
    yield "\ufeff" + _csv_text([FAILURE_COLUMNS])
    after: FailurePosition | None = None
    while True:
        with transaction(database_url) as session:
            page = list_failure_page(session, tenant, wanted.failure_filter(), limit=DOWNLOAD_PAGE, after=after)
        yield _csv_text(
            (
                f.source_anchor,
                f.object_type,
                f.error_code,
                f.message,
                failure_advice(f.error_code, f.source_anchor),
                f.first_failed,
                f.last_failed,
                f.attempts,
            )
            for f in page.rows
        )
        if not page.more or not page.rows:
            return
        after = page.rows[-1].position


@router.get("/{tenant}/conflicts.csv")
def conflicts_csv(request: Request, tenant: str, session: SignInSession) -> StreamingResponse:
    """The conflicts list as the page's query string filters and orders it, every page of it."""
    row = report_tenant(request, tenant, session)
    lines = _conflict_lines(services(request).settings.database_url, row, ConflictQuery.of(request))
    return _download(lines, f"syncguard-conflicts-{row.name}.csv")


@router.get("/{tenant}/failures.csv")
def failures_csv(request: Request, tenant: str, session: SignInSession) -> StreamingResponse:
    """The failed exports as the tab's query string filters them, newest failure first, every page."""
    row = report_tenant(request, tenant, session)
    lines = _failure_lines(services(request).settings.database_url, row, FailuresQuery.of(request))
    return _download(lines, f"syncguard-failures-{row.name}.csv")
