"""A face's route class: whatever a route raises, the face's own translation answers it first.

The Graph and SCIM faces each answer errors in their standard's body; the wrapping around FastAPI's
route handler is the same for both, so it lives here once and each face passes its `translated`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

Translate = Callable[[Exception], Response | None]


def translating_route(translate: Translate, doc: str) -> type[APIRoute]:
    """An `APIRoute` whose handler answers an exception with `translate(exc)`, or re-raises it on None."""

    class TranslatingRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def translating_handler(request: Request) -> Response:
                try:
                    return await handler(request)
                except Exception as exc:
                    answer = translate(exc)
                    if answer is None:
                        raise
                    return answer

            return translating_handler

    TranslatingRoute.__doc__ = doc
    return TranslatingRoute
