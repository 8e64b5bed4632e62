"""`/scim/v2/Users`, `/Groups`, `/Contacts`: create, read, search, replace, patch and delete.

Reads come from the tables (`shared.queries.scim_directory`); every write goes through `writes`
as an export and answers with the object as the workers stored it.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from scim2_models import Context, ListResponse, ResponseParameters
from sqlalchemy.orm import Session

from api.database import db_session
from api.scim import openapi as bodies
from api.scim.auth import ScimTenant
from api.scim.errors import ScimError, ScimResponse, ScimRoute
from api.scim.extension_paths import expanded_names
from api.scim.mapping import export_attributes, resource_body
from api.scim.patch import patched
from api.scim.resources import KIND_BY_ENDPOINT, Kind
from api.scim.writes import Write, apply_writes, object_locks
from api.services import Services, services
from shared.queries.scim_directory import ScimObject, ScimSearch, ScimSort, find_by_anchor, find_by_id, search_objects
from shared.queries.scim_filter import UnsupportedFilter
from shared.store.engine import transaction
from shared.store.tables import Tenant

router = APIRouter(prefix="/scim/v2", route_class=ScimRoute, tags=["SCIM 2.0"])
MAX_COUNT = 1000
Session_ = Annotated[Session, Depends(db_session)]
Services_ = Annotated[Services, Depends(services)]


async def scim_json(request: Request) -> Any:
    """The body as JSON whatever its content type (application/scim+json or application/json)."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ScimError(400, "the body is not valid JSON", "invalidSyntax") from None


Body_ = Annotated[Any, Depends(scim_json)]


def kind_of(endpoint: str) -> Kind:
    return KIND_BY_ENDPOINT[endpoint]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/scim/v2"


def location(request: Request, kind: Kind, object_id: str) -> str:
    return f"{base_url(request)}/{kind.endpoint}/{object_id}"


def _split(value: str | None) -> list[str] | None:
    return expanded_names([part.strip() for part in value.split(",") if part.strip()]) if value else None


def shown(
    request: Request, kind: Kind, found: ScimObject, attributes: str | None = None, excluded: str | None = None
) -> dict[str, Any]:
    """The resource as stored, through its model, with `attributes`/`excludedAttributes` applied."""
    body = resource_body(kind, found, location(request, kind, found.row.object_id))
    resource = kind.model.model_validate(body)
    parameters: ResponseParameters[Any] = ResponseParameters(
        attributes=_split(attributes), excluded_attributes=_split(excluded)
    )
    return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)


def stored(services: Services, tenant: Tenant, kind: Kind, anchor: str) -> ScimObject | None:
    """The object of `anchor` as the workers left it, read in a fresh transaction."""
    with transaction(services.settings.database_url) as session:
        row = find_by_anchor(session, tenant, anchor)
        if row is None or row.deleted:
            return None
        return find_by_id(session, tenant, kind.object_class.value, row.object_id)


def existing(session: Session, tenant: Tenant, kind: Kind, object_id: str) -> ScimObject:
    found = find_by_id(session, tenant, kind.object_class.value, object_id) if len(object_id) <= 64 else None
    if found is None:
        raise ScimError(404, f"{kind.name} {object_id!r} not found")
    return found


def parse_resource(kind: Kind, body: Any, context: Context) -> Any:
    if not isinstance(body, dict):
        raise ScimError(400, f"the body must be a {kind.name} resource (a JSON object)", "invalidSyntax")
    return kind.model.model_validate(body, scim_ctx=context)


def write_one(services: Services, tenant: Tenant, kind: Kind, write: Write) -> None:
    outcome = apply_writes(services, tenant, [write])[0]
    if not outcome.applied:
        raise outcome.refusal()


def create(request: Request, kind: Kind, tenant: Tenant, session: Session, found: Services, body: Any) -> Response:
    resource = parse_resource(kind, body, Context.RESOURCE_CREATION_REQUEST)
    anchor = resource.external_id or str(uuid.uuid4())
    if len(anchor) > 256:
        raise ScimError(400, "externalId is longer than 256 characters", "invalidValue")
    holder = find_by_anchor(session, tenant, anchor)
    session.commit()  # the request's transaction ends here (no connection held while the write waits)
    if holder is not None and not holder.deleted:
        raise ScimError(
            409, f"an object with externalId {anchor!r} exists already (id {holder.object_id})", "uniqueness"
        )
    with object_locks(found, tenant, [anchor]):
        write_one(found, tenant, kind, Write(anchor, kind.object_class.value, "add", export_attributes(kind, resource)))
    result = stored(found, tenant, kind, anchor)
    if result is None:
        raise ScimError(409, f"{kind.name} {anchor!r} was deleted by a later write", "uniqueness")
    where = location(request, kind, result.row.object_id)
    return ScimResponse(shown(request, kind, result), status_code=201, headers={"Location": where})


def replace(
    request: Request, kind: Kind, tenant: Tenant, session: Session, found: Services, object_id: str, body: Any
) -> Response:
    resource = parse_resource(kind, body, Context.RESOURCE_REPLACEMENT_REQUEST)
    current = existing(session, tenant, kind, object_id)
    anchor = current.row.source_anchor
    session.commit()  # no connection held while the write waits on the workers
    if resource.external_id is not None and resource.external_id != anchor:
        raise ScimError(400, f"externalId is the object's sourceAnchor ({anchor!r}) and cannot change", "mutability")
    with object_locks(found, tenant, [anchor]):
        write_one(
            found, tenant, kind, Write(anchor, kind.object_class.value, "update", export_attributes(kind, resource))
        )
    return _answer(request, kind, tenant, found, anchor)


def modify(
    request: Request, kind: Kind, tenant: Tenant, session: Session, found: Services, object_id: str, body: Any
) -> Response:
    current = existing(session, tenant, kind, object_id)
    anchor = current.row.source_anchor
    session.commit()  # no connection held while the write waits on the workers
    with object_locks(found, tenant, [anchor]):
        latest = stored(found, tenant, kind, anchor)  # under the lock: the state the last write left
        if latest is None:
            raise ScimError(404, f"{kind.name} {object_id!r} not found")
        desired = resource_body(kind, latest, location(request, kind, object_id), desired=True)
        resource = patched(kind, desired, body)
        write_one(
            found, tenant, kind, Write(anchor, kind.object_class.value, "update", export_attributes(kind, resource))
        )
    return _answer(request, kind, tenant, found, anchor)


def _answer(request: Request, kind: Kind, tenant: Tenant, found: Services, anchor: str) -> Response:
    result = stored(found, tenant, kind, anchor)
    if result is None:
        raise ScimError(404, f"{kind.name} with externalId {anchor!r} was deleted by a later write")
    return ScimResponse(shown(request, kind, result))


def remove(kind: Kind, tenant: Tenant, session: Session, found: Services, object_id: str) -> Response:
    current = existing(session, tenant, kind, object_id)
    anchor = current.row.source_anchor
    session.commit()  # no connection held while the write waits on the workers
    with object_locks(found, tenant, [anchor]):
        write_one(found, tenant, kind, Write(anchor, kind.object_class.value, "delete"))
    return Response(status_code=204)


def search(
    request: Request,
    kind: Kind,
    tenant: Tenant,
    session: Session,
    filter_: str | None,
    start_index: int,
    count: int,
    sort_by: str | None,
    sort_order: str | None,
    attributes: str | None,
    excluded: str | None,
) -> Response:
    sort = None
    if sort_by:
        try:
            sort = ScimSort(sort_by.lower().split(":")[-1] if sort_by.lower().startswith("urn:") else sort_by.lower())
        except ValueError:
            raise ScimError(
                400,
                f"sortBy {sort_by!r}: sort by userName, displayName, externalId, id or meta.lastModified",
                "invalidValue",
            ) from None
    if sort_order is not None and sort_order.lower() not in ("ascending", "descending"):
        raise ScimError(400, f"sortOrder is ascending or descending, not {sort_order!r}", "invalidValue")
    query = ScimSearch(
        kind.object_class.value,
        filter=filter_,
        sort_by=sort,
        descending=(sort_order or "").lower() == "descending",
        start_index=max(start_index, 1),
        count=min(max(count, 0), MAX_COUNT),
    )
    try:
        total, page = search_objects(session, tenant, query)
    except UnsupportedFilter as exc:
        raise ScimError(400, str(exc), "invalidFilter") from None
    body = ListResponse[kind.model](  # type: ignore[name-defined]
        total_results=total,
        start_index=query.start_index,
        items_per_page=len(page),
        resources=[
            kind.model.model_validate(resource_body(kind, o, location(request, kind, o.row.object_id))) for o in page
        ],
    )
    parameters: ResponseParameters[Any] = ResponseParameters(
        attributes=_split(attributes), excluded_attributes=_split(excluded)
    )
    return ScimResponse(body.model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters))


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ScimError(400, f"{key} must be a string", "invalidValue")
    return value


def _index(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**31:
        raise ScimError(400, f"{key} must be an integer", "invalidValue")
    return value


def _names(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ScimError(400, f"{key} must be a list of attribute names", "invalidValue")
    return ",".join(value)


def search_request(request: Request, kind: Kind, tenant: Tenant, session: Session, body: Any) -> Response:
    """POST `/{endpoint}/.search` (RFC 7644 §3.4.3): the query of a GET, carried by a SearchRequest body."""
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a SearchRequest (a JSON object)", "invalidSyntax")
    return search(
        request,
        kind,
        tenant,
        session,
        _text(body, "filter"),
        _index(body, "startIndex", 1),
        _index(body, "count", 100),
        _text(body, "sortBy"),
        _text(body, "sortOrder"),
        _names(body, "attributes"),
        _names(body, "excludedAttributes"),
    )


@router.post("/.search", summary="Search every resource type at once (not supported)", response_class=ScimResponse)
def search_everything(tenant: ScimTenant) -> Response:
    raise ScimError(501, "searching several resource types at once is not supported: POST /{endpoint}/.search")


def _register(kind: Kind) -> None:
    path = f"/{kind.endpoint}"

    @router.post(
        path + "/.search",
        summary=f"Search {kind.endpoint} (SearchRequest)",
        response_class=ScimResponse,
        openapi_extra=bodies.search_body(),
    )
    def post_search(request: Request, tenant: ScimTenant, session: Session_, body: Body_) -> Response:
        return search_request(request, kind, tenant, session, body)

    @router.post(
        path,
        status_code=201,
        summary=f"Create a {kind.name}",
        response_class=ScimResponse,
        openapi_extra=bodies.resource_body(kind),
    )
    def post(request: Request, tenant: ScimTenant, session: Session_, found: Services_, body: Body_) -> Response:
        return create(request, kind, tenant, session, found, body)

    @router.get(path, summary=f"Search {kind.endpoint}", response_class=ScimResponse)
    def get_list(
        request: Request,
        tenant: ScimTenant,
        session: Session_,
        filter: Annotated[str | None, Query(max_length=2048)] = None,
        startIndex: Annotated[int, Query(ge=-(2**31), le=2**31)] = 1,
        count: Annotated[int, Query(ge=-(2**31), le=2**31)] = 100,
        sortBy: Annotated[str | None, Query(max_length=256)] = None,
        sortOrder: Annotated[str | None, Query(max_length=16)] = None,
        attributes: Annotated[str | None, Query(max_length=2048)] = None,
        excludedAttributes: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> Response:
        return search(
            request, kind, tenant, session, filter, startIndex, count, sortBy, sortOrder, attributes, excludedAttributes
        )

    @router.get(path + "/{id}", summary=f"One {kind.name}", response_class=ScimResponse)
    def get_one(
        request: Request,
        tenant: ScimTenant,
        session: Session_,
        id: str,
        attributes: Annotated[str | None, Query(max_length=2048)] = None,
        excludedAttributes: Annotated[str | None, Query(max_length=2048)] = None,
    ) -> Response:
        return ScimResponse(shown(request, kind, existing(session, tenant, kind, id), attributes, excludedAttributes))

    @router.put(
        path + "/{id}",
        summary=f"Replace a {kind.name}",
        response_class=ScimResponse,
        openapi_extra=bodies.resource_body(kind),
    )
    def put(
        request: Request, tenant: ScimTenant, session: Session_, found: Services_, id: str, body: Body_
    ) -> Response:
        return replace(request, kind, tenant, session, found, id, body)

    @router.patch(
        path + "/{id}",
        summary=f"Patch a {kind.name}",
        response_class=ScimResponse,
        openapi_extra=bodies.patch_body(kind),
    )
    def patch(
        request: Request, tenant: ScimTenant, session: Session_, found: Services_, id: str, body: Body_
    ) -> Response:
        return modify(request, kind, tenant, session, found, id, body)

    @router.delete(path + "/{id}", status_code=204, summary=f"Delete a {kind.name}")
    def delete(tenant: ScimTenant, session: Session_, found: Services_, id: str) -> Response:
        return remove(kind, tenant, session, found, id)


for _kind in KIND_BY_ENDPOINT.values():
    _register(_kind)
