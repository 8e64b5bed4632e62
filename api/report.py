"""The web error report: sign-in, conflicts of Users, Groups and Contacts, one object's page.

Plain server-rendered HTML (Jinja2, autoescaped) with one stylesheet and no script. A person signs
in with the tenant's API token in a small form; the browser then holds only an opaque, expiring
session id (REPORT_SESSION_TTL_S) in an HttpOnly, SameSite=Strict cookie that only the report's pages
accept. Sign-in, sign-out and the failed exports' retry are form posts with CSRF tokens
(api/report_session.py); one without a valid token is refused with 403 and changes nothing. One
conflict side by side (api/report_conflict.py), the failed exports tab (api/report_failures.py) and
the CSV downloads (api/report_downloads.py) are pages of their own, on this module's helpers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from api import report_session
from api.auth import MAX_SECRET, REPORT_COOKIE, TenantNotFound
from api.database import db_session
from api.paging import BadSkipToken, Cursor, decode, encode
from shared import queries
from shared.core.export import TENANT_NAME_PATTERN
from shared.queries.options import SortDirection, SortField
from shared.queries.provisioning_errors import ErrorFilter
from shared.store.tables import Tenant

router = APIRouter(prefix="/report", include_in_schema=False)

PAGE_SIZE = 25
OBJECT_TYPES = {"User": "Users", "Group": "Groups", "Contact": "Contacts"}
PROPERTIES = {"UserPrincipalName": "UPN", "ProxyAddresses": "Proxy address"}
SORTS = {"None": "Time occurred", "DisplayName": "Display name", "UserPrincipalName": "UPN"}
MAX_SEARCH = 256
_TENANT_NAME = re.compile(TENANT_NAME_PATTERN)

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)
templates.env.filters["path"] = lambda value: quote(str(value), safe="")
templates.env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""
templates.env.filters["moment"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def conflict_url(tenant: str, source_anchor: str, value: str) -> str:
    """Where one conflict's side-by-side page lives (api/report_conflict.py): the waiter's anchor and
    the value as it asked for it, which every conflict row knows."""
    return f"/report/{quote(tenant, safe='')}/conflict?" + urlencode({"object": source_anchor, "value": value})


templates.env.globals["conflict_url"] = conflict_url


class SignInNeeded(Exception):
    """The browser has no usable token for this tenant: send it to the sign-in form."""

    def __init__(self, tenant: str, next_url: str) -> None:
        super().__init__(tenant)
        self.tenant = tenant
        self.next_url = next_url


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A report page; a signed-in one carries its session's CSRF token for the sign-out form."""
    context.setdefault("csrf_token", getattr(request.state, "report_csrf", ""))
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def report_tenant(request: Request, tenant: str, session: Session) -> Tenant:
    """The tenant named in the path, when the browser's session is one of its."""
    if not _is_tenant_name(tenant):
        raise TenantNotFound(tenant)
    found = report_session.current_session(request, session)
    if found is None:
        raise SignInNeeded(tenant, request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    record, row = found
    if row.name != tenant:
        raise TenantNotFound(tenant)
    request.state.report_csrf = record.csrf_token
    return row


def _is_tenant_name(name: str) -> bool:
    return _TENANT_NAME.fullmatch(name) is not None


def _choice(value: str | None, allowed: dict[str, str] | set[str], default: str | None = None) -> str | None:
    """Form values outside the menu fall back to the default: a hand-edited URL still shows a page."""
    return value if value in allowed else default


@dataclass(frozen=True, slots=True)
class ConflictQuery:
    """The conflicts page's filters, from the query string."""

    object_type: str | None
    property_name: str | None
    search: str
    sort: SortField
    direction: SortDirection

    @classmethod
    def of(cls, request: Request) -> ConflictQuery:
        args = request.query_params
        search = args.get("q", "").replace("\x00", "").strip()[:MAX_SEARCH]
        return cls(
            object_type=_choice(args.get("type"), OBJECT_TYPES),
            property_name=_choice(args.get("property"), PROPERTIES),
            search=search,
            sort=SortField(_choice(args.get("sort"), SORTS) or SortField.NONE.value),
            direction=SortDirection(_choice(args.get("dir"), {"Ascending", "Descending"}) or "Ascending"),
        )

    def error_filter(self) -> ErrorFilter:
        return ErrorFilter(property_name=self.property_name, search=self.search or None, object_type=self.object_type)

    def url(self, tenant: str, **changes: str | None) -> str:
        """This page's URL with some parameters changed (None drops one); the page token is dropped."""
        return self._at(f"/report/{quote(tenant, safe='')}", changes)

    def csv_url(self, tenant: str) -> str:
        """The CSV download of the same filters and order (api/report_downloads.py), from the first row."""
        return self._at(f"/report/{quote(tenant, safe='')}/conflicts.csv", {})

    def _at(self, path: str, changes: dict[str, str | None]) -> str:
        params = {
            "type": self.object_type,
            "property": self.property_name,
            "q": self.search or None,
            "sort": self.sort.value if self.sort is not SortField.NONE else None,
            "dir": self.direction.value if self.direction is not SortDirection.ASCENDING else None,
        }
        params.update(changes)
        query = urlencode({k: v for k, v in params.items() if v})
        return path + (f"?{query}" if query else "")


@router.get("", response_class=HTMLResponse)
def sign_in_form(request: Request, tenant: str = "", next: str = "") -> HTMLResponse:
    return _sign_in_page(request, tenant[:63], next)


def _sign_in_page(request: Request, tenant: str, next: str, error: str | None = None) -> HTMLResponse:
    pre_session, csrf_token = report_session.sign_in_csrf(request)
    response = page(
        request,
        "sign_in.html",
        status_code=401 if error else 200,
        tenant_name=tenant,
        next=_safe_next(next),
        error=error,
        csrf_token=csrf_token,
    )
    report_session.set_cookie(request, response, report_session.SIGN_IN_COOKIE, pre_session)
    return response


def refused(request: Request, message: str, target: str, link: str) -> HTMLResponse:
    """403 for a form post without a valid CSRF token: nothing was signed in or out, or sent."""
    return page(request, "refused.html", status_code=403, tenant=None, message=message, target=target, link=link)


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    session: Annotated[Session, Depends(db_session)],
    tenant: Annotated[str, Form(max_length=63)] = "",
    token: Annotated[str, Form(max_length=MAX_SECRET)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    tenant, token = tenant.strip(), token.strip()
    if not report_session.sign_in_csrf_valid(request, csrf_token):
        return refused(
            request,
            "This sign-in form has expired or did not come from this report, so nobody was signed in. "
            "Open the sign-in page again and sign in from there.",
            f"/report?{urlencode({'tenant': tenant})}" if _is_tenant_name(tenant) else "/report",
            "Open the sign-in page",
        )
    session_id = report_session.sign_in_with_token(request, session, tenant, token)
    if session_id is None:
        return _sign_in_page(
            request,
            tenant,
            next,
            error="That token does not open this tenant's report. Check both, or create a token with "
            f"'syncguard tenant token create --tenant {tenant if _is_tenant_name(tenant) else 'T'}'.",
        )
    target = _safe_next(next) if _safe_next(next).startswith(f"/report/{tenant}") else f"/report/{tenant}"
    response = RedirectResponse(target, status_code=303)
    report_session.set_cookie(request, response, REPORT_COOKIE, session_id, report_session.session_ttl_s(request))
    report_session.drop_cookie(request, response, report_session.SIGN_IN_COOKIE)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out(request: Request, csrf_token: Annotated[str, Form(max_length=128)] = "") -> Response:
    """Deletes the session on the server, then the cookie; without a session there is nothing to end."""
    record = report_session.stored_record(request)
    if record is not None:
        if not record.csrf_matches(csrf_token):
            return refused(
                request,
                "This sign-out form did not come from this report, so you are still signed in. "
                "Use the Sign out button on a report page.",
                f"/report/{quote(record.tenant, safe='')}",
                "Back to the report",
            )
        report_session.end_session(request)
    response = RedirectResponse("/report", status_code=303)
    report_session.drop_cookie(request, response, REPORT_COOKIE)
    return response


def _safe_next(target: str) -> str:
    """Only a path inside the report: never an open redirect to another site."""
    return target if target.startswith("/report/") and "//" not in target and "\\" not in target else ""


@router.get("/{tenant}", response_class=HTMLResponse)
def conflicts(request: Request, tenant: str, session: Annotated[Session, Depends(db_session)]) -> HTMLResponse:
    row = report_tenant(request, tenant, session)
    wanted = ConflictQuery.of(request)
    cursor = None
    notice = None
    if token := request.query_params.get("page"):
        try:
            cursor = decode(token, wanted.sort, wanted.direction)
        except BadSkipToken:
            notice = "That page link is out of date; showing the first page."
    result = queries.list_conflicted_objects(
        session,
        row,
        wanted.error_filter(),
        sort_field=wanted.sort,
        sort_direction=wanted.direction,
        limit=PAGE_SIZE,
        after=cursor.position if cursor else None,
        backward=cursor.backward if cursor else False,
    )
    objects = result.objects
    has_next = bool(objects) and (result.more if not (cursor and cursor.backward) else True)
    has_previous = bool(objects) and cursor is not None and (result.more if cursor.backward else True)
    next_url = previous_url = None
    if has_next:
        next_url = wanted.url(
            tenant, page=encode(wanted.sort, wanted.direction, Cursor(objects[-1].position(wanted.sort)))
        )
    if has_previous:
        token = encode(wanted.sort, wanted.direction, Cursor(objects[0].position(wanted.sort), backward=True))
        previous_url = wanted.url(tenant, page=token)
    by_type = queries.count_conflicted_objects_by_type(session, row, wanted.error_filter())
    return page(
        request,
        "conflicts.html",
        tenant=row.name,
        tab="conflicts",
        wanted=wanted,
        objects=objects,
        by_type=by_type,
        object_types=OBJECT_TYPES,
        properties=PROPERTIES,
        sorts=SORTS,
        next_url=next_url,
        previous_url=previous_url,
        first_url=wanted.url(tenant) if cursor else None,
        notice=notice,
        failure_count=queries.count_failures(session, row),
    )


@router.get("/{tenant}/objects/{source_anchor:path}", response_class=HTMLResponse)
def directory_object(
    request: Request, tenant: str, source_anchor: str, session: Annotated[Session, Depends(db_session)]
) -> HTMLResponse:
    row = report_tenant(request, tenant, session)
    detail = queries.show_object(session, row, source_anchor.replace("\x00", "")[:256])
    if detail is None:
        return page(
            request,
            "not_found.html",
            status_code=404,
            tenant=row.name,
            message=f"Tenant {row.name} has no object with source anchor {source_anchor}; it may have been deleted.",
        )
    return page(
        request,
        "object.html",
        tenant=row.name,
        tab="conflicts",
        obj=detail,
        properties=PROPERTIES,
        failure_count=queries.count_failures(session, row),
    )
