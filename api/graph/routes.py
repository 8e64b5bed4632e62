"""`/v1.0/users`, `/v1.0/groups`, `/v1.0/contacts`: collections with OData query options, and items.

Reads only: the tenant is the token's. Query options are checked by `odata`, answered by
`shared.queries.graph_directory`, shaped by `serialise`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy.orm import Session

from api.database import db_session
from api.graph.auth import GraphTenant
from api.graph.errors import GraphError, GraphRoute, documented
from api.graph.odata import MAX_OPTION, MAX_TOP, collection_request, encode_skiptoken, item_select
from api.graph.serialise import DirectoryObjectBody, DirectoryObjectCollection, object_body
from shared.queries.graph_ast import Collection
from shared.queries.graph_directory import (
    GraphQuery,
    Position,
    count_directory_objects,
    find_directory_object,
    list_directory_objects,
)

router = APIRouter(prefix="/v1.0", route_class=GraphRoute, tags=["Microsoft Graph"])


def _options_documented(
    filter_: Annotated[
        str | None,
        Query(
            alias="$filter",
            max_length=MAX_OPTION,
            description="eq, ne, in, startswith(), and, or, not; any() over onPremisesProvisioningErrors "
            "(category, propertyCausingError, value) and proxyAddresses. Case-insensitive.",
        ),
    ] = None,
    select: Annotated[str | None, Query(alias="$select", max_length=MAX_OPTION, description="a,b,c")] = None,
    top: Annotated[int | None, Query(alias="$top", ge=1, le=MAX_TOP, description="Objects per page (100).")] = None,
    orderby: Annotated[
        str | None, Query(alias="$orderby", max_length=64, description="displayName or userPrincipalName, asc|desc")
    ] = None,
    count: Annotated[bool | None, Query(alias="$count", description="true: @odata.count of all matches.")] = None,
    search: Annotated[
        str | None, Query(alias="$search", max_length=MAX_OPTION, description='"displayName:term"')
    ] = None,
    skiptoken: Annotated[
        str | None, Query(alias="$skiptoken", max_length=MAX_OPTION, description="From @odata.nextLink.")
    ] = None,
    consistency: Annotated[
        str | None, Header(alias="ConsistencyLevel", description="Graph asks for `eventual` with $count; accepted.")
    ] = None,
) -> None:
    """Declares the query options for the OpenAPI document; `odata` reads them from the request itself,
    where an unknown `$` option is refused rather than silently ignored."""
    del filter_, select, top, orderby, count, search, skiptoken, consistency


def _select_documented(
    select: Annotated[str | None, Query(alias="$select", max_length=MAX_OPTION, description="a,b,c")] = None,
) -> None:
    """Declares `$select` of an item for the OpenAPI document; `odata.item_select` reads it."""
    del select


Documented = Annotated[None, Depends(_options_documented)]
SelectDocumented = Annotated[None, Depends(_select_documented)]
Session_ = Annotated[Session, Depends(db_session)]


def _collection(request: Request, tenant: Any, session: Session, collection: Collection) -> JSONResponse:
    asked = collection_request(request, collection)
    query = asked.query
    page = list_directory_objects(session, tenant, query)
    body: dict[str, Any] = {"@odata.context": f"{_base(request)}/$metadata#{collection.value}"}
    if asked.count:
        body["@odata.count"] = count_directory_objects(session, tenant, query)
    body["value"] = [object_body(obj, collection, asked.select) for obj in page.objects]
    if page.more:
        last = page.objects[-1]
        token = encode_skiptoken(query.order_by, query.descending, Position(last.sort_key, last.pk))
        body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skiptoken": token}))
    return JSONResponse(body)


def _count_only(tenant: Any, session: Session, collection: Collection) -> PlainTextResponse:
    return PlainTextResponse(str(count_directory_objects(session, tenant, GraphQuery(collection))))


def _item(request: Request, tenant: Any, session: Session, collection: Collection, key: str) -> JSONResponse:
    select = item_select(request, collection)
    obj = find_directory_object(session, tenant, collection, key)
    if obj is None:
        raise GraphError(
            404, f"Resource '{key}' does not exist or one of its queried reference-property objects are not present."
        )
    body = {
        "@odata.context": f"{_base(request)}/$metadata#{collection.value}/$entity",
        **object_body(obj, collection, select),
    }
    return JSONResponse(body)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/v1.0"


ItemKey = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^[^\x00]*$")]
_COLLECTION_RESPONSES = {200: {"model": DirectoryObjectCollection}, **documented(400, 401, 503)}
_ITEM_RESPONSES = {200: {"model": DirectoryObjectBody}, **documented(400, 401, 404, 503)}
_COUNT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/plain": {"schema": {"type": "string", "pattern": "^[0-9]+$"}}},
        "description": "The count.",
    },
    **documented(401, 503),
}


@router.get("/users", summary="List users", response_class=JSONResponse, responses=_COLLECTION_RESPONSES)
def users(request: Request, tenant: GraphTenant, session: Session_, _: Documented) -> JSONResponse:
    return _collection(request, tenant, session, Collection.USERS)


@router.get("/users/$count", summary="How many users", response_class=PlainTextResponse, responses=_COUNT_RESPONSES)
def users_count(tenant: GraphTenant, session: Session_) -> PlainTextResponse:
    return _count_only(tenant, session, Collection.USERS)


@router.get("/users/{id}", summary="One user by id or userPrincipalName", responses=_ITEM_RESPONSES)
def user(
    request: Request,
    tenant: GraphTenant,
    session: Session_,
    id: ItemKey,
    _: SelectDocumented,
) -> JSONResponse:
    return _item(request, tenant, session, Collection.USERS, id)


@router.get("/groups", summary="List groups", responses=_COLLECTION_RESPONSES)
def groups(request: Request, tenant: GraphTenant, session: Session_, _: Documented) -> JSONResponse:
    return _collection(request, tenant, session, Collection.GROUPS)


@router.get("/groups/$count", summary="How many groups", response_class=PlainTextResponse, responses=_COUNT_RESPONSES)
def groups_count(tenant: GraphTenant, session: Session_) -> PlainTextResponse:
    return _count_only(tenant, session, Collection.GROUPS)


@router.get("/groups/{id}", summary="One group by id", responses=_ITEM_RESPONSES)
def group(
    request: Request,
    tenant: GraphTenant,
    session: Session_,
    id: ItemKey,
    _: SelectDocumented,
) -> JSONResponse:
    return _item(request, tenant, session, Collection.GROUPS, id)


@router.get("/contacts", summary="List organisational contacts", responses=_COLLECTION_RESPONSES)
def contacts(request: Request, tenant: GraphTenant, session: Session_, _: Documented) -> JSONResponse:
    return _collection(request, tenant, session, Collection.CONTACTS)


@router.get(
    "/contacts/$count", summary="How many contacts", response_class=PlainTextResponse, responses=_COUNT_RESPONSES
)
def contacts_count(tenant: GraphTenant, session: Session_) -> PlainTextResponse:
    return _count_only(tenant, session, Collection.CONTACTS)


@router.get("/contacts/{id}", summary="One organisational contact by id", responses=_ITEM_RESPONSES)
def contact(
    request: Request,
    tenant: GraphTenant,
    session: Session_,
    id: ItemKey,
    _: SelectDocumented,
) -> JSONResponse:
    return _item(request, tenant, session, Collection.CONTACTS, id)
