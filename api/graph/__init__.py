"""The Microsoft Graph face (design §5): `/v1.0`, read by admins' scripts and the official Graph SDKs.

`router` holds every route of the face, with a catch-all last so that an unknown `/v1.0` path or
method is answered in Graph's error body too.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match

from api.graph import routes, synchronization
from api.graph.errors import graph_error

router = APIRouter()
router.include_router(routes.router)
router.include_router(synchronization.router)
_FACE = [*routes.router.routes, *synchronization.router.routes]


@router.api_route(
    "/v1.0/{segments:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
def unknown(request: Request, segments: str) -> JSONResponse:
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in _FACE):
        return graph_error(405, "Specified HTTP method is not allowed for the request target.")
    return graph_error(404, f"Resource not found for the segment '{segments.split('/')[0]}'.")
