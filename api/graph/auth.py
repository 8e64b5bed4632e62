"""The tenant of a Graph request is the tenant of its bearer token, as a Graph token belongs to one tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.database import db_session
from api.graph.errors import GraphError
from shared.store.tables import Tenant
from shared.tenants.tokens import tenant_of_secret

MAX_SECRET = 200

graph_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="GraphBearer",
    description="A tenant's API token (`syncguard tenant token create --tenant T`): the Graph face reads that tenant.",
)


def graph_tenant(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(graph_bearer)],
    session: Annotated[Session, Depends(db_session)],
) -> Tenant:
    """401 in Graph's body for no token, a token of another scheme, or an unknown or revoked one."""
    secret = credentials.credentials if credentials else None
    tenant = tenant_of_secret(session, secret) if secret and len(secret) <= MAX_SECRET else None
    if tenant is None:
        raise GraphError(
            401,
            "Access token is missing or invalid: send 'Authorization: Bearer <token>' with a token from "
            "'syncguard tenant token create --tenant T'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


GraphTenant = Annotated[Tenant, Depends(graph_tenant)]
