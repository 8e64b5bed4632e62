"""Web report sessions: the browser holds an opaque id; its tenant, API token and expiry stay on the server.

Kept in Redis (REDIS_URL) rather than a PostgreSQL table: a session lives hours and must vanish at
its expiry, which Redis's TTL does with no sweep, no migration and no write on the database the exports
need; every API process shares it, so a session opened on one replica works on all. What Redis cannot
know is whether the token is still good, so every lookup checks the token row in PostgreSQL (the
report page reads that database anyway): a revoked token or a deleted tenant ends its sessions at the
next request, whichever process revoked it (the CLI needs no Redis for that).

The id carries 256 random bits and Redis stores only its SHA-256 (like the API tokens themselves),
so a copy of Redis opens no report. Each session also keeps a random CSRF token for the forms a
signed-in page shows (a synchroniser token). The expiry is absolute: TTL after sign-in, not sliding.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from redis import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.store.tables import ApiToken, Tenant
from shared.tenants.tokens import SECRET_PREFIX, secret_digest

SESSION_KEY_PREFIX = "sg:report-session:"


@dataclass(frozen=True, slots=True)
class ReportSession:
    """What the server keeps about one signed-in browser (never the API token or the session id)."""

    tenant_id: int
    tenant: str
    token_id: int
    csrf_token: str
    expires_at: float  # Unix seconds

    def csrf_matches(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf_token.encode(), presented.encode("utf-8", "surrogatepass"))


# Pure: ids, keys and the stored record ---------------------------------------------------------------


def new_secret() -> str:
    """256 random bits, URL-safe: a session id or a CSRF token."""
    return secrets.token_urlsafe(32)


def session_key(session_id: str) -> str:
    """Where a session is stored: the hash of its id, so the id itself is never on the server."""
    return SESSION_KEY_PREFIX + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


def encode_session(record: ReportSession) -> bytes:
    return json.dumps(asdict(record), separators=(",", ":")).encode()


def decode_session(raw: bytes) -> ReportSession | None:
    """A stored record, or None for anything else (a record of another version is no session)."""
    try:
        fields = json.loads(raw)
        record = ReportSession(
            tenant_id=fields["tenant_id"],
            tenant=fields["tenant"],
            token_id=fields["token_id"],
            csrf_token=fields["csrf_token"],
            expires_at=fields["expires_at"],
        )
    except (ValueError, TypeError, KeyError):
        return None
    kinds = (
        (record.tenant_id, int),
        (record.token_id, int),
        (record.tenant, str),
        (record.csrf_token, str),
        (record.expires_at, float | int),
    )
    return record if all(isinstance(value, kind) for value, kind in kinds) else None


# I/O: Redis for the session, PostgreSQL for the token behind it ----------------------------------------


def open_session(
    redis: Redis, db: Session, tenant_name: str, secret: str, ttl_s: int
) -> tuple[str, ReportSession] | None:
    """Sign in with an API token of `tenant_name`: a new session id (for the cookie) and its record.

    None when the token is unknown, revoked, or another tenant's: the caller says the same for each.
    """
    if not secret.startswith(SECRET_PREFIX):
        return None
    found = db.execute(
        select(Tenant.id, Tenant.name, ApiToken.id)
        .join(ApiToken, ApiToken.tenant_id == Tenant.id)
        .where(ApiToken.secret_sha256 == secret_digest(secret), ApiToken.revoked_at.is_(None))
    ).first()
    if found is None or found[1] != tenant_name:
        return None
    session_id = new_secret()
    record = ReportSession(found[0], found[1], found[2], new_secret(), time.time() + ttl_s)
    redis.set(session_key(session_id), encode_session(record), ex=ttl_s)
    return session_id, record


def stored_session(redis: Redis, session_id: str) -> ReportSession | None:
    """The unexpired record of a session id, without asking whether its token is still good."""
    raw = redis.get(session_key(session_id))
    record = decode_session(raw) if isinstance(raw, bytes) else None
    if record is None or record.expires_at <= time.time():
        return None
    return record


def find_session(redis: Redis, db: Session, session_id: str) -> tuple[ReportSession, Tenant] | None:
    """The session and its tenant while the session is unexpired and its token still active.

    A session whose token was revoked (or whose tenant is gone) is deleted on the spot.
    """
    record = stored_session(redis, session_id)
    if record is None:
        return None
    tenant = db.scalars(
        select(Tenant)
        .join(ApiToken, ApiToken.tenant_id == Tenant.id)
        .where(ApiToken.id == record.token_id, Tenant.id == record.tenant_id, ApiToken.revoked_at.is_(None))
    ).first()
    if tenant is None:
        close_session(redis, session_id)
        return None
    return record, tenant


def close_session(redis: Redis, session_id: str) -> None:
    redis.delete(session_key(session_id))
