"""One limit on the size of every request body, enforced before any route reads or parses it: 413.

A pure ASGI middleware, so it sees the body as it streams: a `Content-Length` over the limit is
refused before a byte of the body is read, and a body without one (chunked) is counted as it arrives
and refused the moment it passes the limit; the route never gets the rest. A route that catches the
error (FastAPI turns any failure to read a JSON body into 400) still answers 413: whatever it would
have answered instead is dropped.

Posting exports takes up to API_MAX_BODY_BYTES (the route spools it to disk, `api/body.py`). SCIM's
`POST /scim/v2/Bulk` takes up to SCIM_BULK_MAX_PAYLOAD_BYTES (announced as `maxPayloadSize`): a Bulk
request is parsed in memory, about six times its size at the peak, so it gets a bound of its own.
Every other route takes at most API_MAX_OTHER_BODY_BYTES (one export's worth by default). No route
ever takes more than API_MAX_BODY_BYTES.
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The routes with a limit of their own: (method, path). Every other route gets the lower limit.
EXPORTS_ROUTE = ("POST", re.compile(r"/v1/tenants/[^/]+/exports/?"))
BULK_ROUTE = ("POST", re.compile(r"/scim/v2/Bulk/?"))


class _LimitPassed(Exception):
    """Raised to the route from `receive`: the body went past the limit, nothing more of it is read."""


@dataclass(frozen=True, slots=True)
class _Limit:
    size: int
    setting: str  # named in the refusal, so the client's operator knows what to raise
    advice: str


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _capped(limit: _Limit, ceiling: _Limit) -> _Limit:
    """`limit`, unless it is over the service-wide ceiling: then the ceiling, named as such."""
    return limit if limit.size < ceiling.size else _Limit(ceiling.size, ceiling.setting, limit.advice)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit: int, other_limit: int, bulk_limit: int) -> None:
        self.app = app
        self.large = _Limit(limit, "API_MAX_BODY_BYTES", "post the exports in several requests")
        self.other = _capped(_Limit(other_limit, "API_MAX_OTHER_BODY_BYTES", "this route reads no more"), self.large)
        self.bulk = _capped(
            _Limit(bulk_limit, "SCIM_BULK_MAX_PAYLOAD_BYTES", "split the operations over several requests"), self.large
        )

    def limit_for(self, scope: Scope) -> _Limit:
        method, path = scope.get("method", ""), scope.get("path", "")
        if method == EXPORTS_ROUTE[0] and EXPORTS_ROUTE[1].fullmatch(path):
            return self.large
        if method == BULK_ROUTE[0] and BULK_ROUTE[1].fullmatch(path):
            return self.bulk
        return self.other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _declared_length(scope)
        if declared is not None and declared > limit.size:
            await _refuse(send, limit, scope.get("path", ""))
            return
        received = 0
        passed = started = refused = False

        async def counted() -> Message:
            nonlocal received, passed
            if passed:
                raise _LimitPassed()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.size:
                    passed = True
                    raise _LimitPassed()
            return message

        async def answer(message: MutableMapping[str, Any]) -> None:
            nonlocal started, refused
            if not passed or started:
                started = started or message["type"] == "http.response.start"
                await send(message)
            elif not refused:  # the route's own answer to the error it got: 413 instead
                refused = True
                await _refuse(send, limit, scope.get("path", ""))

        try:
            await self.app(scope, counted, answer)
        except Exception:
            if not passed or started:
                raise  # not ours, or a response already under way: the server closes the connection
        if passed and not started and not refused:
            await _refuse(send, limit, scope.get("path", ""))


def _refusal_body(path: str, detail: str) -> tuple[bytes, bytes]:
    """The 413 in the error shape of the face the request was for: Graph's, SCIM's, or the API's own."""
    if path == "/v1.0" or path.startswith("/v1.0/"):
        return json.dumps(
            {"error": {"code": "Request_EntityTooLarge", "message": detail}}
        ).encode(), b"application/json"
    if path == "/scim/v2" or path.startswith("/scim/v2/"):
        error = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "413", "detail": detail}
        return json.dumps(error).encode(), b"application/scim+json"
    return json.dumps({"detail": detail}).encode(), b"application/json"


async def _refuse(send: Send, limit: _Limit, path: str) -> None:
    """413, and close: the rest of the body is never read, so the connection cannot serve another request."""
    detail = f"the request body is larger than {limit.size} bytes ({limit.setting}); {limit.advice}"
    body, content_type = _refusal_body(path, detail)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
