"""`/ServiceProviderConfig`, `/ResourceTypes`, `/Schemas` (RFC 7644 §4): what this service announces.

They describe the service, not a tenant's data, and RFC 7644 §4 lets them be read without
authentication, so scim2-tester and identity providers can discover the service before a token
is set up.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    ETag,
    Filter,
    ListResponse,
    Patch,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
)

from api.scim.errors import ScimError, ScimResponse, ScimRoute
from api.scim.resources import KINDS, schemas
from api.scim.routes import MAX_COUNT, base_url
from api.services import Services, services

router = APIRouter(prefix="/scim/v2", route_class=ScimRoute, tags=["SCIM 2.0"])


def service_provider_config(found: Services) -> ServiceProviderConfig:
    settings = found.settings
    return ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(
            supported=True,
            max_operations=settings.scim_bulk_max_operations,
            max_payload_size=settings.scim_bulk_payload_limit,  # enforced by api/limits.py
        ),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=True),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="API token",
                description="A tenant's API token: syncguard tenant token create --tenant T",
                primary=True,
            )
        ],
    )


def _located(request: Request, endpoint: str, key: str) -> dict[str, str]:
    return {"resourceType": endpoint, "location": f"{base_url(request)}/{endpoint}s/{key}"}


@router.get("/ServiceProviderConfig", summary="What this SCIM service supports", response_class=ScimResponse)
def get_service_provider_config(request: Request, found: Annotated[Services, Depends(services)]) -> ScimResponse:
    body = service_provider_config(found).model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body["meta"] = {"resourceType": "ServiceProviderConfig", "location": f"{base_url(request)}/ServiceProviderConfig"}
    return ScimResponse(body)


def _resource_types(request: Request) -> list[ResourceType]:
    found = []
    for kind in KINDS:
        resource_type = kind.resource_type()
        resource_type.meta = _located(request, "ResourceType", kind.name)  # type: ignore[assignment]
        found.append(ResourceType.model_validate(resource_type.model_dump()))
    return found


def _schemas(request: Request) -> list[Schema]:
    published = []
    for schema in schemas():
        body = schema.model_dump()
        body["meta"] = {"resourceType": "Schema", "location": f"{base_url(request)}/Schemas/{schema.id}"}
        published.append(Schema.model_validate(body))
    return published


@router.get("/ResourceTypes", summary="The resource types served", response_class=ScimResponse)
def get_resource_types(request: Request) -> ScimResponse:
    found = _resource_types(request)
    answer = ListResponse[ResourceType](
        total_results=len(found), start_index=1, items_per_page=len(found), resources=found
    )
    return ScimResponse(answer.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@router.get("/ResourceTypes/{name}", summary="One resource type", response_class=ScimResponse)
def get_resource_type(request: Request, name: str) -> ScimResponse:
    for resource_type in _resource_types(request):
        if resource_type.id == name:
            return ScimResponse(resource_type.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise ScimError(404, f"there is no resource type {name!r}")


@router.get("/Schemas", summary="The schemas served", response_class=ScimResponse)
def get_schemas(request: Request) -> ScimResponse:
    found = _schemas(request)
    answer = ListResponse[Schema](total_results=len(found), start_index=1, items_per_page=len(found), resources=found)
    return ScimResponse(answer.model_dump(scim_ctx=Context.SEARCH_RESPONSE))


@router.get("/Schemas/{urn}", summary="One schema", response_class=ScimResponse)
def get_schema(request: Request, urn: str) -> ScimResponse:
    for schema in _schemas(request):
        if schema.id == urn:
            return ScimResponse(schema.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise ScimError(404, f"there is no schema {urn!r}")
