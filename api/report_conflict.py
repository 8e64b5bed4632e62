"""The web report's side-by-side page of one conflict: the waiting object and the holder, and its history.

An admin deciding which of two objects should give a value up needs both in view at once: their
classes, names, anchors and values, with the contested value marked on each side, and since when
each has held or wanted it. The page is addressed by the waiter's source anchor and the value it
asks for, as every conflict row of the list and of the object page knows them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from api.database import db_session
from api.report import PROPERTIES, page, report_tenant
from shared import queries
from shared.queries.conflict_history import conflict_history
from shared.queries.conflict_pair import conflict_pair, contested_key
from shared.reports.advice import Party, conflict_advice

router = APIRouter(prefix="/report", include_in_schema=False)

MAX_VALUE = 1123  # the longest proxy address; a UPN is shorter
EVENT_WORDS = {
    "opened": "Opened",
    "reported": "Reported",
    "released": "Released",
    "dropped": "Dropped",
}


@router.get("/{tenant}/conflict", response_class=HTMLResponse)
def conflict(
    request: Request,
    tenant: str,
    session: Annotated[Session, Depends(db_session)],
    source_anchor: Annotated[str, Query(alias="object", max_length=256)] = "",
    value: Annotated[str, Query(max_length=MAX_VALUE)] = "",
) -> HTMLResponse:
    row = report_tenant(request, tenant, session)
    source_anchor, value = source_anchor.replace("\x00", ""), value.replace("\x00", "")
    key = contested_key(value) if value else None
    pair = conflict_pair(session, row, source_anchor, key) if key is not None else None
    history = conflict_history(session, row, pair.waiter.object_pk, key) if pair is not None and key else []
    if pair is None or (not pair.entry_open and not history):
        return page(
            request,
            "not_found.html",
            status_code=404,
            tenant=row.name,
            message=f"Tenant {row.name} has no conflict of the object with source anchor {source_anchor} "
            f"over {value or 'that value'}; the object may have been deleted, or it never asked for that value.",
        )
    property_name = pair.property_name or history[-1].property_name
    property_value = pair.property_value or history[-1].property_value
    waiter = Party(pair.waiter.display_name, pair.waiter.source_anchor)
    holder = Party(pair.holder.display_name, pair.holder.source_anchor) if pair.holder else None
    return page(
        request,
        "conflict.html",
        tenant=row.name,
        tab="conflicts",
        pair=pair,
        property_name=property_name,
        property_words=PROPERTIES.get(property_name, property_name),
        property_value=property_value,
        advice=conflict_advice(waiter, holder, property_name, property_value) if pair.entry_open else None,
        history=history,
        event_words=EVENT_WORDS,
        failure_count=queries.count_failures(session, row),
    )
