"""The HTTP service: `uvicorn api.app:app` (one process or several; all state is in PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from api import (
    directory,
    exports,
    features,
    graph,
    operations,
    outages,
    report,
    report_conflict,
    report_downloads,
    report_failures,
    report_overview,
    scim,
)
from api.auth import TenantNotFound
from api.limits import BodyLimit
from api.services import Services
from api.validation import invalid_request
from shared.exports.transient import is_unavailable
from shared.preflight.redis_policy import require_noeviction
from shared.settings import Settings
from shared.store.engine import EngineOptions, use_engine_options

DESCRIPTION = """\
Post directory-sync exports and read what syncguard made of them: provisioning errors (duplicate
UPN and SMTP proxy address conflicts), objects, failed exports and the resiliency features.

Every `/v1/tenants/{tenant}/...` call needs one of the tenant's API tokens as
`Authorization: Bearer <token>` (`syncguard tenant token create --tenant T`). A token for another
tenant gets 404. The web report for people is at `/report`.
"""
RETRY_AFTER_S = "5"  # seconds; a database or Redis outage the service rides out is usually that short


class SecurityHeaders:
    """Headers every response carries: no framing, no MIME sniffing, no referrer leaking tenant URLs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if scope["path"].startswith("/report"):
                    headers.append(
                        (b"content-security-policy", b"default-src 'none'; style-src 'self'; form-action 'self'")
                    )
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A Redis that may evict keys raises EvictingRedis here: uvicorn logs why and exits non-zero.
        await run_in_threadpool(require_noeviction, settings)
        use_engine_options(EngineOptions.for_api(settings))
        app.state.services = Services.start(settings)
        try:
            yield
        finally:
            app.state.services.close()

    app = FastAPI(title="syncguard", version="1", description=DESCRIPTION, lifespan=lifespan)
    faces = (graph, scim)  # last: their catch-alls
    pages = (report, report_conflict, report_failures, report_downloads, report_overview)  # the web report
    for module in (exports, directory, features, operations, *pages, *faces):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), name="static")
    app.add_middleware(
        BodyLimit,
        limit=settings.api_max_body_bytes,
        other_limit=settings.api_max_other_body_bytes,
        bulk_limit=settings.scim_bulk_max_payload_bytes,
    )
    app.add_middleware(SecurityHeaders)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/report", status_code=307)

    @app.exception_handler(report.SignInNeeded)
    def sign_in_needed(request: Request, exc: report.SignInNeeded) -> Response:
        query = urlencode({"tenant": exc.tenant, "next": exc.next_url})
        return RedirectResponse(f"/report?{query}", status_code=303)

    app.exception_handler(RequestValidationError)(invalid_request)

    @app.exception_handler(TenantNotFound)
    def tenant_not_found(request: Request, exc: TenantNotFound) -> Response:
        return report.page(
            request,
            "not_found.html",
            status_code=404,
            tenant=None,
            message=f"There is no report of tenant {exc.tenant} for this token.",
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    def database_unavailable(request: Request, exc: Exception) -> Response:
        if not is_unavailable(exc):
            raise exc  # a defect, not an outage: the server error it is
        problem = outages.logged(outages.what_is_down(exc), exc, f"{request.method} {request.url.path}")
        return JSONResponse(
            {"detail": f"{problem}; try again shortly"}, status_code=503, headers={"Retry-After": RETRY_AFTER_S}
        )

    @app.exception_handler(RedisConnectionError)
    @app.exception_handler(RedisTimeoutError)
    def redis_unavailable(request: Request, exc: Exception) -> Response:
        problem = outages.logged(outages.what_is_down(exc), exc, f"{request.method} {request.url.path}")
        return JSONResponse(
            {"detail": f"{problem}; try again shortly"}, status_code=503, headers={"Retry-After": RETRY_AFTER_S}
        )

    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """`api.app:app`, as uvicorn is told to serve it: built from the environment on first use."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app()
    return _app
