"""The web report's cookies: the session id after sign-in, and the CSRF token of the sign-in form.

Sign-in has no session yet, so its form is guarded by a signed double-submit cookie: the browser gets
a random pre-session id in an HttpOnly cookie and the form carries HMAC(key, id); a post whose token
does not match its cookie is refused. The key is 32 random bytes kept in Redis, made by the first API
process that needs one, so every replica signs alike and the operator has no secret to generate and
hand to each. An anonymous visitor writes nothing else to Redis: storing a pre-session per visitor
would let anyone fill the noeviction Redis that also holds the queue. Sign-out checks the session's
own synchroniser token instead (shared/tenants/sessions.py).

Libraries such as starlette-csrf sign with itsdangerous under a deployment secret, as a middleware over
every route; one standard-library HMAC on the two form posts needs neither.

Every cookie is HttpOnly, SameSite=Strict, scoped to /report, and `Secure` when the request came over
HTTPS, as the TLS proxy says through uvicorn's --proxy-headers from a --forwarded-allow-ips address.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from fastapi import Request, Response
from redis import Redis
from sqlalchemy.orm import Session

from api.auth import REPORT_COOKIE
from api.services import services
from shared.store.tables import Tenant
from shared.tenants.sessions import (
    ReportSession,
    close_session,
    find_session,
    new_secret,
    open_session,
    stored_session,
)

SIGN_IN_COOKIE = "syncguard_report_sign_in"
CSRF_KEY = "sg:report-csrf-key"
COOKIE_PATH = "/report"
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # what new_secret() makes; anything else is not ours


def _cookie(request: Request, name: str) -> str | None:
    value = request.cookies.get(name)
    return value if value is not None and _SECRET.fullmatch(value) else None


def _redis(request: Request) -> Redis:
    return services(request).redis


def _signing_key(redis: Redis) -> bytes:
    key = redis.get(CSRF_KEY)
    if not isinstance(key, bytes):
        redis.set(CSRF_KEY, secrets.token_bytes(32), nx=True)  # two processes racing keep the first
        key = redis.get(CSRF_KEY)
    assert isinstance(key, bytes), "Redis lost the CSRF key it was just given"
    return key


def _sign(key: bytes, pre_session: str) -> str:
    return hmac.new(key, b"report-sign-in:" + pre_session.encode(), hashlib.sha256).hexdigest()


def sign_in_csrf(request: Request) -> tuple[str, str]:
    """The browser's pre-session id (kept, or new) and the CSRF token its sign-in form carries."""
    pre_session = _cookie(request, SIGN_IN_COOKIE) or new_secret()
    return pre_session, _sign(_signing_key(_redis(request)), pre_session)


def sign_in_csrf_valid(request: Request, presented: str) -> bool:
    pre_session = _cookie(request, SIGN_IN_COOKIE)
    if pre_session is None or not presented:
        return False
    expected = _sign(_signing_key(_redis(request)), pre_session)
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogatepass"))


def session_id(request: Request) -> str | None:
    return _cookie(request, REPORT_COOKIE)


def session_ttl_s(request: Request) -> int:
    return services(request).settings.report_session_ttl_s


def sign_in_with_token(request: Request, db: Session, tenant: str, token: str) -> str | None:
    """A new session id for a good token of `tenant` (ending the one this browser had), else None."""
    opened = open_session(_redis(request), db, tenant, token, session_ttl_s(request))
    if opened is None:
        return None
    end_session(request)  # its cookie is about to be replaced: a copy of it must not live on
    return opened[0]


def end_session(request: Request) -> None:
    if sid := session_id(request):
        close_session(_redis(request), sid)


def current_session(request: Request, db: Session) -> tuple[ReportSession, Tenant] | None:
    """The browser's live session and its tenant, or None (no cookie, expired, signed out, token revoked)."""
    sid = session_id(request)
    return find_session(_redis(request), db, sid) if sid else None


def stored_record(request: Request) -> ReportSession | None:
    """The browser's unexpired session record, whatever its token: enough to sign it out."""
    sid = session_id(request)
    return stored_session(_redis(request), sid) if sid else None


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def drop_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )
