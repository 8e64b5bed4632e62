"""The web report's overview: where the tenant stands (counts) and which way it is going (the chart).

The chart is inline SVG made on the server (shared/reports/chart.py): no script, nothing fetched,
within the report's content-security policy; the same figures stand beside it in a table.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from sqlalchemy.orm import Session

from api.database import db_session
from api.report import OBJECT_TYPES, PROPERTIES, ConflictQuery, page, report_tenant
from shared.queries.conflict_history import daily_conflict_series
from shared.queries.options import SortDirection, SortField
from shared.queries.overview import count_conflicts_by_type_and_property, count_failures_by_code, last_sent_report
from shared.reports.chart import conflict_chart

router = APIRouter(prefix="/report", include_in_schema=False)

CHART_DAYS = 30
ALL_CONFLICTS = ConflictQuery(None, None, "", SortField.NONE, SortDirection.ASCENDING)


@router.get("/{tenant}/overview", response_class=HTMLResponse)
def overview(request: Request, tenant: str, session: Annotated[Session, Depends(db_session)]) -> HTMLResponse:
    row = report_tenant(request, tenant, session)
    counts = count_conflicts_by_type_and_property(session, row)
    failures = count_failures_by_code(session, row)
    series = daily_conflict_series(session, row, days=CHART_DAYS)
    return page(
        request,
        "overview.html",
        tenant=row.name,
        tab="overview",
        counts=counts,
        object_types=OBJECT_TYPES,
        properties=PROPERTIES,
        all_conflicts=ALL_CONFLICTS,
        failures_by_code=failures,
        failure_count=sum(n for _, n in failures),
        last_report=last_sent_report(session, row),
        series=series,
        chart=Markup(conflict_chart(series)),  # made of numbers and dates; its text is escaped
        days=CHART_DAYS,
    )
