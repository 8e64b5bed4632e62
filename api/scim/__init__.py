"""The SCIM 2.0 face (design §6): `/scim/v2`, written by identity providers; every write is an export.

`router` holds every route of the face, with a catch-all last so that an unknown `/scim/v2` path or
method is answered in SCIM's error body too.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.routing import Match

from api.scim import bulk, discovery, routes
from api.scim.errors import ScimError

router = APIRouter()
router.include_router(discovery.router)
router.include_router(bulk.router)
router.include_router(routes.router)
_FACE = [*discovery.router.routes, *bulk.router.routes, *routes.router.routes]


@router.api_route(
    "/scim/v2/{segments:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
)
def unknown(request: Request, segments: str) -> Response:
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in _FACE):
        return ScimError(405, f"{request.method} is not allowed on /scim/v2/{segments}").response()
    return ScimError(404, f"there is no SCIM endpoint /scim/v2/{segments}").response()
