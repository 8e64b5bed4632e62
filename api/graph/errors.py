"""Graph's error body on every answer of the `/v1.0` face, whatever went wrong, never `{"detail": ...}`.

The translation sits in the face's route class, not in app-wide exception handlers, so the other
faces keep their own bodies: `GraphRoute` turns a `GraphError`, a request that fails validation, an
`HTTPException` and an unavailable database or Redis into `{"error": {"code", "message"}}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.face_routes import translating_route
from shared.exports.transient import is_unavailable

RETRY_AFTER_S = "5"

# Graph's codes for each status this face answers with.
CODES = {
    400: "Request_BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    405: "Request_BadRequest",
    413: "Request_EntityTooLarge",
    429: "Request_ThrottledTemporarily",
    503: "Service_ServiceUnavailable",
}
UNSUPPORTED_QUERY = "Request_UnsupportedQuery"


class GraphErrorDetail(BaseModel):
    code: str = Field(description="Graph's error code, e.g. Request_ResourceNotFound or Request_UnsupportedQuery.")
    message: str = Field(description="What was wrong and what to do about it.")


class GraphErrorBody(BaseModel):
    error: GraphErrorDetail


class GraphError(Exception):
    """An answer other than success, in Graph's words."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "Request_BadRequest")
        self.message = message
        self.headers = headers

    def response(self) -> JSONResponse:
        return graph_error(self.status, self.message, self.code, self.headers)


def graph_error(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    # A message may quote the request, and a lone surrogate in it cannot be encoded: escape it, or the
    # answer would be a 500 (tests/api/hostile_inputs.jsonl).
    printable = message.encode("utf-8", "backslashreplace").decode("utf-8")
    body = {"error": {"code": code or CODES.get(status, "Request_BadRequest"), "message": printable}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body", "header"))
        parts.append(f"{where or 'the request'}: {error.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts)


def translated(exc: Exception) -> Response | None:
    """The Graph answer for an exception the face knows, or None for a defect (a server error it is)."""
    if isinstance(exc, GraphError):
        return exc.response()
    if isinstance(exc, RequestValidationError):
        return graph_error(400, _validation_message(exc))
    if isinstance(exc, HTTPException):
        headers = dict(exc.headers) if exc.headers else None
        return graph_error(exc.status_code, str(exc.detail), headers=headers)
    if isinstance(exc, DBAPIError | PoolTimeout) and is_unavailable(exc):
        return graph_error(
            503, "the database is unavailable; try again shortly", headers={"Retry-After": RETRY_AFTER_S}
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return graph_error(503, "Redis is unavailable; try again shortly", headers={"Retry-After": RETRY_AFTER_S})
    return None


GraphRoute = translating_route(
    translated, "A route of the Graph face: what it raises is answered in Graph's error body."
)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: each error status with Graph's body."""
    descriptions = {
        400: "A query option or body this face cannot answer (Request_BadRequest, Request_UnsupportedQuery).",
        401: "No token, or an unknown or revoked one (InvalidAuthenticationToken).",
        404: "No such object in the token's tenant (Request_ResourceNotFound).",
        405: "The method is not allowed here.",
        413: "The body is too large.",
        503: "The database or Redis is unavailable; try again after Retry-After seconds.",
    }
    return {status: {"model": GraphErrorBody, "description": descriptions[status]} for status in statuses}
