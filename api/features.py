"""The tenant's resiliency features: read them, enable one; disabling is refused with 409."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from sqlalchemy.orm import Session

from api.auth import AuthorisedTenant
from api.database import db_session
from api.directory import AUTH_ERRORS
from api.schemas import FeatureChange, Features, Problem
from shared.store.tables import Tenant
from shared.tenants.registry import Feature, TenantError, enable_feature, features, refuse_disable

router = APIRouter(tags=["features"])


def _features_of(tenant: Tenant) -> Features:
    return Features.model_validate({feature.value: on for feature, on in features(tenant).items()})


@router.get("/v1/tenants/{tenant}/features", response_model=Features, responses=AUTH_ERRORS)
def get_features(tenant: AuthorisedTenant) -> Features:
    return _features_of(tenant)


@router.put(
    "/v1/tenants/{tenant}/features/{feature}",
    response_model=Features,
    summary="Enable a feature (for good)",
    responses={
        **AUTH_ERRORS,
        400: {"model": Problem, "description": "The body is not JSON."},
        409: {"model": Problem, "description": "Disabling an enabled feature is refused."},
    },
)
def put_feature(
    tenant: AuthorisedTenant, feature: Feature, change: FeatureChange, session: Annotated[Session, Depends(db_session)]
) -> Features:
    """`{"enabled": true}` enables the feature; it can never be disabled again, so `false` on an
    enabled feature is 409 with the reason. `false` on a feature that is off changes nothing."""
    if change.enabled:
        enable_feature(session, tenant, feature)
    elif features(tenant)[feature]:
        try:
            refuse_disable(tenant, feature)
        except TenantError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _features_of(tenant)
