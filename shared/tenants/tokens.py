"""API tokens: each belongs to one tenant, is shown once when issued, and is stored only as a hash.

The secret carries 256 random bits, so a plain SHA-256 is enough (no slow hash needed: nobody can
guess it), and a token is found by the hash of what the caller presents, never by a scan.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.store.tables import ApiToken, Tenant, utcnow
from shared.tenants.registry import TenantError

SECRET_PREFIX = "sgt_"
MAX_NAME = 100


class ApiTokenError(TenantError):
    """A token request that cannot be done; the CLI shows the message like any tenant error."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token with its secret: the only moment the secret exists outside the caller."""

    token_id: int
    tenant: str
    name: str | None
    secret: str


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: int
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(session: Session, tenant: Tenant, name: str | None = None) -> IssuedToken:
    if name is not None and len(name) > MAX_NAME:
        raise ApiTokenError(f"token name is {len(name)} characters long, the limit is {MAX_NAME}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(tenant_id=tenant.id, name=name, secret_sha256=secret_digest(secret))
    session.add(token)
    session.flush()
    return IssuedToken(token.id, tenant.name, name, secret)


def revoke_token(session: Session, tenant: Tenant, token_id: int) -> TokenInfo:
    """Revoke for good; revoking twice keeps the first time. Another tenant's token is not found."""
    token = session.scalars(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == tenant.id)).first()
    if token is None:
        raise ApiTokenError(f"tenant {tenant.name!r} has no API token with id {token_id}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return _info(token)


def list_tokens(session: Session, tenant: Tenant) -> list[TokenInfo]:
    rows = session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant.id).order_by(ApiToken.id))
    return [_info(token) for token in rows]


def tenant_of_secret(session: Session, secret: str) -> Tenant | None:
    """The tenant an active token belongs to; None for an unknown or revoked secret."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    return session.scalars(
        select(Tenant)
        .join(ApiToken, ApiToken.tenant_id == Tenant.id)
        .where(ApiToken.secret_sha256 == secret_digest(secret), ApiToken.revoked_at.is_(None))
    ).first()


def _info(token: ApiToken) -> TokenInfo:
    return TokenInfo(token.id, token.name, token.created_at, token.revoked_at)
