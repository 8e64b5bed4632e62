"""SCIM's error body (RFC 7644 §3.12) on every answer of the `/scim/v2` face, never `{"detail": ...}`.

As on the Graph face, the translation sits in the face's route class, so the other faces keep
their bodies: `ScimRoute` turns a `ScimError`, scim2-models' own SCIM exceptions, a request that
fails validation, an `HTTPException` and an unavailable database or Redis into
`urn:ietf:params:scim:api:messages:2.0:Error` with `status`, `scimType` and `detail`.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from scim2_models import SCIMException
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.face_routes import translating_route
from shared.exports.transient import is_unavailable

ERROR_URN = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"
RETRY_AFTER_S = "5"


class ScimResponse(JSONResponse):
    media_type = MEDIA_TYPE


class ScimError(Exception):
    """An answer other than success, in SCIM's words."""

    def __init__(
        self, status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.detail, self.scim_type)

    def response(self) -> ScimResponse:
        return ScimResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    # A detail may quote the request; a lone surrogate in it could not be encoded (a 500).
    printable = detail.encode("utf-8", "backslashreplace").decode("utf-8")
    body: dict[str, Any] = {"schemas": [ERROR_URN], "status": str(status), "detail": printable}
    if scim_type:
        body["scimType"] = scim_type
    return body


def invalid_value(exc: ValidationError) -> ScimError:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where or 'the body'}: {error.get('msg', 'invalid')}")
    return ScimError(400, "Invalid resource: " + "; ".join(parts), "invalidValue")


def translated(exc: Exception) -> Response | None:
    """The SCIM answer for an exception the face knows, or None for a defect (a server error it is)."""
    if isinstance(exc, ScimError):
        return exc.response()
    if isinstance(exc, SCIMException):
        return ScimError(exc.status, str(exc.detail or exc), exc.scim_type or None).response()
    if isinstance(exc, ValidationError):
        return invalid_value(exc).response()
    if isinstance(exc, RequestValidationError):
        parts = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body", "header"))
            parts.append(f"{where or 'the request'}: {error.get('msg', 'invalid')}")
        return ScimError(400, "Invalid request: " + "; ".join(parts), "invalidValue").response()
    if isinstance(exc, HTTPException):
        return ScimError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}) or None).response()
    if isinstance(exc, DBAPIError | PoolTimeout) and is_unavailable(exc):
        return ScimError(
            503, "the database is unavailable; try again shortly", headers={"Retry-After": RETRY_AFTER_S}
        ).response()
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return ScimError(
            503, "Redis is unavailable; try again shortly", headers={"Retry-After": RETRY_AFTER_S}
        ).response()
    return None


ScimRoute = translating_route(translated, "A route of the SCIM face: what it raises is answered in SCIM's error body.")
