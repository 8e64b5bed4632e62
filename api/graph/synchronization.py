"""`/v1.0/directory/onPremisesSynchronization`: the tenant's two quarantine features, in Graph's names.

`quarantineUponUpnConflictEnabled` is DuplicateUPNResiliency and
`quarantineUponProxyAddressesConflictEnabled` DuplicateProxyAddressResiliency. PATCH with `true`
enables one for good; `false` for an enabled one is refused (400, with the reason) and changes nothing,
since every change is checked before any is made.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.database import db_session
from api.graph.auth import GraphTenant
from api.graph.errors import GraphError, GraphRoute, documented
from shared.store.tables import Tenant
from shared.tenants.registry import Feature, TenantError, enable_feature, features, refuse_disable

router = APIRouter(prefix="/v1.0/directory", route_class=GraphRoute, tags=["Microsoft Graph"])

MAX_BODY = 16 * 1024  # a features patch is a few hundred bytes
GRAPH_FEATURES = {
    "quarantineUponUpnConflictEnabled": Feature.DUPLICATE_UPN_RESILIENCY,
    "quarantineUponProxyAddressesConflictEnabled": Feature.DUPLICATE_PROXY_ADDRESS_RESILIENCY,
}


class SynchronizationFeatures(BaseModel):
    quarantineUponUpnConflictEnabled: bool = Field(description="DuplicateUPNResiliency.")
    quarantineUponProxyAddressesConflictEnabled: bool = Field(description="DuplicateProxyAddressResiliency.")


class OnPremisesSynchronization(BaseModel):
    id: str = Field(description="The tenant's id.")
    features: SynchronizationFeatures


class OnPremisesSynchronizationList(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    odataContext: str | None = Field(None, alias="@odata.context")
    value: list[OnPremisesSynchronization]


class FeaturesPatch(BaseModel):
    """`{"features": {...: true}}`; `@odata.type` annotations, as the Graph SDK sends them, are allowed."""

    features: dict[str, bool]


def _synchronization(tenant: Tenant) -> dict[str, Any]:
    on = features(tenant)
    return {"id": str(tenant.id), "features": {name: on[feature] for name, feature in GRAPH_FEATURES.items()}}


def _own(tenant: Tenant, id: str) -> None:
    if id != str(tenant.id):
        raise GraphError(404, f"Resource '{id}' does not exist: the token's tenant has id {tenant.id}.")


SyncId = Annotated[str, Path(max_length=64, description="The tenant's id, from the list.")]


@router.get(
    "/onPremisesSynchronization",
    summary="The tenant's synchronisation features",
    response_model=OnPremisesSynchronizationList,
    responses=documented(401, 503),
)
def list_synchronization(request: Request, tenant: GraphTenant) -> JSONResponse:
    context = str(request.base_url).rstrip("/") + "/v1.0/$metadata#directory/onPremisesSynchronization"
    return JSONResponse({"@odata.context": context, "value": [_synchronization(tenant)]})


@router.get(
    "/onPremisesSynchronization/{id}",
    summary="The tenant's synchronisation features, by the tenant's id",
    response_model=OnPremisesSynchronization,
    responses=documented(401, 404, 503),
)
def get_synchronization(tenant: GraphTenant, id: SyncId) -> JSONResponse:
    _own(tenant, id)
    return JSONResponse(_synchronization(tenant))


@router.patch(
    "/onPremisesSynchronization/{id}",
    summary="Enable a quarantine feature (for good)",
    status_code=204,
    response_class=Response,
    responses=documented(400, 401, 404, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": FeaturesPatch.model_json_schema()}},
        }
    },
)
async def patch_synchronization(
    request: Request, tenant: GraphTenant, id: SyncId, session: Annotated[Session, Depends(db_session)]
) -> Response:
    """`true` enables; `false` on an enabled feature is 400 with the reason; `false` on one that is off is no change."""
    _own(tenant, id)
    wanted = _wanted(await _body(request))
    current = features(tenant)
    for feature, on in wanted.items():
        if not on and current[feature]:
            try:
                refuse_disable(tenant, feature)
            except TenantError as exc:
                raise GraphError(400, str(exc)) from None
    for feature, on in wanted.items():
        if on:
            enable_feature(session, tenant, feature)
    return Response(status_code=204)


async def _body(request: Request) -> Any:
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise GraphError(413, f"the body is larger than {MAX_BODY} bytes; a features patch is a few hundred")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks))
    except (ValueError, RecursionError):  # too deep is RecursionError, not a ValueError
        raise GraphError(
            400, 'the body is not JSON: send {"features": {"quarantineUponUpnConflictEnabled": true}}'
        ) from None


def _wanted(body: Any) -> dict[Feature, bool]:
    if not isinstance(body, dict):
        raise GraphError(400, "the body is a JSON object with features")
    unknown = [key for key in body if key != "features" and not key.startswith("@odata.")]
    if unknown:
        raise GraphError(400, f"{unknown[0]} cannot be changed here; only features can", "Request_BadRequest")
    changes = body.get("features")
    if not isinstance(changes, dict) or not changes:
        raise GraphError(400, "features is missing or empty: name a feature with true")
    wanted: dict[Feature, bool] = {}
    for name, value in changes.items():
        if name.startswith("@odata."):
            continue
        if name not in GRAPH_FEATURES:
            known = ", ".join(GRAPH_FEATURES)
            raise GraphError(400, f"features.{name} is not supported here; the features are {known}")
        if not isinstance(value, bool):
            raise GraphError(400, f"features.{name} is true or false, not {json.dumps(value)[:40]}")
        wanted[GRAPH_FEATURES[name]] = value
    return wanted
