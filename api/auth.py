"""Who may read or write a tenant: a bearer token for the API, a session cookie for the report.

No token, or one that is unknown or revoked, is 401. A good token for another tenant is 404, the
same answer as a tenant that does not exist, so a token never tells which other tenants exist.
The report's cookie holds an opaque session id, never the token (shared/tenants/sessions.py), and
is accepted only by the report's pages, never by the API, so a page elsewhere cannot make a browser
post exports or change features; the report's own two forms carry CSRF tokens (api/report_session.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.database import db_session
from shared.core.export import TENANT_NAME_PATTERN
from shared.store.tables import Tenant
from shared.tenants.tokens import tenant_of_secret

REPORT_COOKIE = "syncguard_report_session"
MAX_SECRET = 200

bearer = HTTPBearer(
    auto_error=False,
    description="A tenant's API token from `syncguard tenant token create --tenant T`.",
)

TenantName = Annotated[
    str, Path(pattern=TENANT_NAME_PATTERN, max_length=63, description="The tenant's name, e.g. contoso.")
]


class NotAuthenticated(Exception):
    """No usable token: the API answers 401, the report sends the browser to its login form."""


class TenantNotFound(Exception):
    """The tenant does not exist or the token is not for it: 404 either way."""

    def __init__(self, tenant: str) -> None:
        super().__init__(f"tenant {tenant!r} not found")
        self.tenant = tenant


def tenant_for_secret(session: Session, tenant: str, secret: str | None) -> Tenant:
    if not secret or len(secret) > MAX_SECRET:
        raise NotAuthenticated()
    owner = tenant_of_secret(session, secret)
    if owner is None:
        raise NotAuthenticated()
    if owner.name != tenant:
        raise TenantNotFound(tenant)
    return owner


def authorised_tenant(
    tenant: TenantName,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    session: Annotated[Session, Depends(db_session)],
) -> Tenant:
    """The tenant in the path, when the bearer token belongs to it."""
    try:
        return tenant_for_secret(session, tenant, credentials.credentials if credentials else None)
    except NotAuthenticated:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid API token is required: send 'Authorization: Bearer <token>' "
            "(create one with 'syncguard tenant token create --tenant T')",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None
    except TenantNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None


AuthorisedTenant = Annotated[Tenant, Depends(authorised_tenant)]
