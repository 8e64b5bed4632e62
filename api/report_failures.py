"""The web report's failed exports tab: filter by error code, search, page size, keyset pages, retry.

A retry is a form post carrying the session's CSRF token (the synchroniser token sign-out checks),
so a page elsewhere cannot make a signed-in browser re-send anything; one without a valid token is
refused with 403 and sends nothing. It runs the code `syncguard failures retry` runs
(shared/exports/retry.py) on the rows the form names, which must be the tenant's. The row stays
until an export of the object applies, as the CLI's retry leaves it, so the page then says how many
were re-sent, not that they are fixed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from kombu.exceptions import OperationalError as BrokerUnreachable
from sqlalchemy.orm import Session

from api.database import db_session
from api.report import MAX_SEARCH, page, refused, report_tenant
from api.services import services
from shared import queries
from shared.core.export import ErrorCode
from shared.core.timestamps import iso_utc
from shared.exports.retry import retry_failed_exports
from shared.queries.failure_pages import FailureFilter, FailurePosition, count_failures_by_code, list_failure_page
from shared.reports.advice import failure_advice

router = APIRouter(prefix="/report", include_in_schema=False)

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
ERROR_CODES = tuple(code.value for code in ErrorCode)
MAX_RETRY_IDS = max(PAGE_SIZES)  # "retry all shown" names at most one page
_MAX_TOKEN = 200
_MAX_ROW_ID = 2**63 - 1


class BadPageToken(ValueError):
    """A page link this service did not make, or one from before a change: start from the first page."""


@dataclass(frozen=True, slots=True)
class FailuresQuery:
    """The tab's filters, from the query string; values off the menu fall back to the defaults."""

    error_code: str | None
    search: str
    page_size: int

    @classmethod
    def of(cls, request: Request) -> FailuresQuery:
        args = request.query_params
        size = args.get("size", "")
        return cls(
            error_code=args.get("code") if args.get("code") in ERROR_CODES else None,
            search=args.get("q", "").replace("\x00", "").strip()[:MAX_SEARCH],
            page_size=int(size) if size.isdigit() and int(size) in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def failure_filter(self) -> FailureFilter:
        return FailureFilter(error_code=self.error_code, search=self.search or None)

    def url(self, tenant: str, **changes: str | None) -> str:
        """This tab's URL with some parameters changed (None drops one); the page token is dropped."""
        return self._at(f"/report/{quote(tenant, safe='')}/failures", changes)

    def csv_url(self, tenant: str) -> str:
        """The CSV download of the same filter (api/report_downloads.py), every row, from the first."""
        return self._at(f"/report/{quote(tenant, safe='')}/failures.csv", {"size": None})

    def _at(self, path: str, changes: dict[str, str | None]) -> str:
        params: dict[str, str | None] = {
            "code": self.error_code,
            "q": self.search or None,
            "size": str(self.page_size) if self.page_size != DEFAULT_PAGE_SIZE else None,
        }
        params.update(changes)
        query = urlencode({k: v for k, v in params.items() if v})
        return path + (f"?{query}" if query else "")


def encode_position(position: FailurePosition, backward: bool = False) -> str:
    payload: dict[str, object] = {"t": iso_utc(position.last_failed), "i": position.failure_id}
    if backward:
        payload["b"] = True
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_position(token: str) -> tuple[FailurePosition, bool]:
    """The position and direction of a page link, checked as strictly as any input."""
    if len(token) > _MAX_TOKEN:
        raise BadPageToken(token)
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise BadPageToken(token) from None
    if not isinstance(payload, dict) or set(payload) - {"t", "i", "b"}:
        raise BadPageToken(token)
    moment, row_id, backward = payload.get("t"), payload.get("i"), payload.get("b", False)
    if type(row_id) is not int or not 0 <= row_id <= _MAX_ROW_ID or type(backward) is not bool:
        raise BadPageToken(token)
    if not isinstance(moment, str) or len(moment) > 40:
        raise BadPageToken(token)
    try:
        last_failed = datetime.fromisoformat(moment)
    except ValueError:
        raise BadPageToken(token) from None
    return FailurePosition(last_failed if last_failed.tzinfo else last_failed.replace(tzinfo=UTC), row_id), backward


def _count(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and len(value) < 10 else None


@router.get("/{tenant}/failures", response_class=HTMLResponse)
def failures(request: Request, tenant: str, session: Annotated[Session, Depends(db_session)]) -> HTMLResponse:
    row = report_tenant(request, tenant, session)
    wanted = FailuresQuery.of(request)
    position, backward, notice = None, False, None
    if token := request.query_params.get("page"):
        try:
            position, backward = decode_position(token)
        except BadPageToken:
            notice = "That page link is out of date; showing the first page."
    found = list_failure_page(
        session, row, wanted.failure_filter(), limit=wanted.page_size, after=position, backward=backward
    )
    rows = found.rows
    has_next = bool(rows) and (found.more if not backward else True)
    has_previous = bool(rows) and position is not None and (found.more if backward else True)
    return page(
        request,
        "failures.html",
        tenant=row.name,
        tab="failures",
        wanted=wanted,
        failures=rows,
        advice={r.failure_id: failure_advice(r.error_code, r.source_anchor) for r in rows},
        by_code=count_failures_by_code(session, row, wanted.search or None),
        error_codes=ERROR_CODES,
        page_sizes=PAGE_SIZES,
        next_url=wanted.url(tenant, page=encode_position(rows[-1].position)) if has_next else None,
        previous_url=wanted.url(tenant, page=encode_position(rows[0].position, backward=True))
        if has_previous
        else None,
        first_url=wanted.url(tenant) if position is not None else None,
        this_url=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        notice=notice,
        resent=_count(request, "resent"),
        still_invalid=_count(request, "invalid"),
        failure_count=queries.count_failures(session, row),
    )


def _back_to(tenant: str, back: str, **counts: int) -> str:
    """The tab the form was on (only a path of this tenant's tab, never elsewhere), with the counts."""
    base = f"/report/{quote(tenant, safe='')}/failures"
    target = urlsplit(back)
    keep: list[tuple[str, str]] = []
    if target.path == base and not target.scheme and not target.netloc:
        keep = [(k, v) for k, v in parse_qsl(target.query) if k in ("code", "q", "size", "page")]
    keep += [(name, str(value)) for name, value in counts.items()]
    return f"{base}?{urlencode(keep)}"


@router.post("/{tenant}/failures/retry", response_class=HTMLResponse)
def retry(
    request: Request,
    tenant: str,
    session: Annotated[Session, Depends(db_session)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    failure: Annotated[list[str] | None, Form()] = None,
    back: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Re-send the named failed exports of the tenant; without the session's CSRF token, nothing."""
    row = report_tenant(request, tenant, session)
    expected = str(request.state.report_csrf)
    if not csrf_token or not hmac.compare_digest(expected.encode(), csrf_token.encode("utf-8", "surrogatepass")):
        return refused(
            request,
            "This retry form did not come from this report, so nothing was sent again. "
            "Use the Retry buttons on the Failed exports tab.",
            f"/report/{quote(row.name, safe='')}/failures",
            "Back to the failed exports",
        )
    ids = sorted({int(value) for value in failure or () if value.isdigit() and len(value) < 19})[:MAX_RETRY_IDS]
    found = services(request)
    try:
        retried = retry_failed_exports(found.settings, row.name, failure_ids=ids, app=found.producer)
    except BrokerUnreachable as exc:
        return page(
            request,
            "unavailable.html",
            status_code=503,
            tenant=row.name,
            tab="failures",
            message=f"The queue did not answer ({type(exc).__name__}), so the exports may not all have been sent "
            "again. Retrying once more is safe: an export already applied is skipped.",
            failure_count=queries.count_failures(session, row),
        )
    sent = retried.sent
    return RedirectResponse(
        _back_to(row.name, back, resent=sent.enqueued, invalid=sent.rejected_count), status_code=303
    )
