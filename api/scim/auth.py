"""The tenant of a SCIM request is the tenant of its bearer token: one token, one tenant, as §6 says."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.database import db_session
from api.scim.errors import ScimError
from shared.store.tables import Tenant
from shared.tenants.tokens import tenant_of_secret

MAX_SECRET = 200

scim_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ScimBearer",
    description="A tenant's API token (`syncguard tenant token create --tenant T`): the SCIM face writes that tenant.",
)


def scim_tenant(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(scim_bearer)],
    session: Annotated[Session, Depends(db_session)],
) -> Tenant:
    """401 in SCIM's body for no token, a token of another scheme, or an unknown or revoked one."""
    secret = credentials.credentials if credentials else None
    tenant = tenant_of_secret(session, secret) if secret and len(secret) <= MAX_SECRET else None
    if tenant is None:
        raise ScimError(
            401,
            "a valid API token is required: send 'Authorization: Bearer <token>' with a token from "
            "'syncguard tenant token create --tenant T'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


ScimTenant = Annotated[Tenant, Depends(scim_tenant)]
