"""Read endpoints: provisioning errors, one object, failed exports. All reads go through `shared.queries`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from sqlalchemy.orm import Session

from api.auth import AuthorisedTenant
from api.database import db_session
from api.paging import BadSkipToken, Cursor, decode, encode
from api.schemas import (
    ConflictedObjectPage,
    ConflictedObjectView,
    DirectoryObjectView,
    FailureList,
    FailureView,
    Problem,
)
from shared import queries
from shared.queries.options import SortDirection, SortField
from shared.queries.provisioning_errors import ErrorFilter

router = APIRouter(tags=["directory"])

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL; refuse it up front instead of failing later
MAX_TOP = 500
DEFAULT_TOP = 100

AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem, "description": "No token, or an unknown or revoked one."},
    404: {"model": Problem, "description": "No such tenant for this token."},
}


@router.get(
    "/v1/tenants/{tenant}/provisioningErrors",
    response_model=ConflictedObjectPage,
    response_model_by_alias=True,
    response_model_exclude_unset=True,  # no nextLink on the last page, as Graph does
    summary="Objects with provisioning errors, filtered, sorted and paged",
    responses={**AUTH_ERRORS, 400: {"model": Problem}},
)
def provisioning_errors(
    request: Request,
    tenant: AuthorisedTenant,
    session: Annotated[Session, Depends(db_session)],
    category: Annotated[Literal["PropertyConflict"], Query()] = "PropertyConflict",
    propertyName: Annotated[Literal["UserPrincipalName", "ProxyAddresses"] | None, Query()] = None,
    propertyValue: Annotated[
        str | None,
        Query(max_length=1123, pattern=NO_NUL, description="Only this value (needs propertyName); any case."),
    ] = None,
    search: Annotated[
        str | None,
        Query(max_length=256, pattern=NO_NUL, description="Substring of display name, UPN or value; any case."),
    ] = None,
    objectType: Annotated[Literal["User", "Group", "Contact"] | None, Query()] = None,
    orderBy: Annotated[SortField, Query(description="None sorts by the first entry's time.")] = SortField.NONE,
    sortDirection: Annotated[SortDirection, Query()] = SortDirection.ASCENDING,
    top: Annotated[int, Query(ge=1, le=MAX_TOP, description="Objects per page.")] = DEFAULT_TOP,
    skipToken: Annotated[
        str | None, Query(max_length=2048, description="From the previous page's @odata.nextLink.")
    ] = None,
) -> ConflictedObjectPage:
    """Each object lists the entries that match, oldest first; pages follow `@odata.nextLink`."""
    if propertyValue is not None and propertyName is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "propertyValue requires propertyName")
    try:
        cursor = decode(skipToken, orderBy, sortDirection) if skipToken else None
    except BadSkipToken as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    page = queries.list_conflicted_objects(
        session,
        tenant,
        ErrorFilter(category, propertyName, propertyValue, search, objectType),
        sort_field=orderBy,
        sort_direction=sortDirection,
        limit=top,
        after=cursor.position if cursor else None,
        backward=cursor.backward if cursor else False,
    )
    next_link = None
    if page.objects and (page.more or (cursor is not None and cursor.backward)):
        token = encode(orderBy, sortDirection, Cursor(page.objects[-1].position(orderBy)))
        next_link = str(request.url.include_query_params(skipToken=token))
    listed = [ConflictedObjectView.of(o) for o in page.objects]
    if next_link is None:
        return ConflictedObjectPage(value=listed)
    return ConflictedObjectPage(value=listed, nextLink=next_link)


@router.get(
    "/v1/tenants/{tenant}/objects/{sourceAnchor:path}",
    response_model=DirectoryObjectView,
    summary="One object as the cloud holds it",
    responses={**AUTH_ERRORS, 404: {"model": Problem, "description": "No such tenant, or no such live object."}},
)
def directory_object(
    tenant: AuthorisedTenant,
    session: Annotated[Session, Depends(db_session)],
    sourceAnchor: Annotated[str, Path(min_length=1, max_length=256, pattern=NO_NUL)],
) -> DirectoryObjectView:
    """Effective UPN and proxy addresses (a quarantined value is not among them) and the entries."""
    detail = queries.show_object(session, tenant, sourceAnchor)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant {tenant.name!r} has no object {sourceAnchor!r}")
    return DirectoryObjectView.of(detail)


@router.get(
    "/v1/tenants/{tenant}/failures",
    response_model=FailureList,
    summary="Failed exports, most recent first",
    responses=AUTH_ERRORS,
)
def failures(tenant: AuthorisedTenant, session: Annotated[Session, Depends(db_session)]) -> FailureList:
    """Invalid exports and legacy-mode conflicts still failing; an object leaves once an export of it applies."""
    return FailureList(value=[FailureView.of(row) for row in queries.list_failures(session, tenant)])
