"""`POST /v1/tenants/{tenant}/exports`: the CLI's `post` over HTTP, through the same producer code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from kombu.exceptions import OperationalError as BrokerUnreachable
from starlette.concurrency import run_in_threadpool

from api.auth import AuthorisedTenant
from api.body import BodyTooLarge, MalformedBody, array_items, is_json_array, json_lines, spool, text_of
from api.schemas import PostAccepted, Problem, Rejection
from api.services import Services, services
from shared.core.export import ExportMessage
from shared.exports.producer import PostResult, post_exports

router = APIRouter(tags=["exports"])

_BODY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": ExportMessage.model_json_schema(),
    "description": "Export messages (docs/design.md §2). JSON lines (one export per line) are accepted too, "
    "as any body that does not start with '['.",
}


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, str(BodyTooLarge(limit)))


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _enqueue(body: IO[bytes], tenant: str, found: Services) -> PostResult:
    """Check an array's syntax first, so a broken array enqueues nothing; then enqueue item by item."""
    items: Iterable[str]
    if is_json_array(body):
        checking = text_of(body)
        try:
            for _ in array_items(checking):
                pass
        finally:
            checking.detach()
        text = text_of(body)
        items = array_items(text)
    else:
        text = text_of(body)
        items = json_lines(text)
    try:
        return post_exports(items, found.settings, found.producer, tenant=tenant)
    finally:
        text.detach()


@router.post(
    "/v1/tenants/{tenant}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Validate exports and enqueue the valid ones",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _BODY_SCHEMA}}}},
    responses={
        400: {"model": Problem, "description": "The JSON array is not valid JSON; nothing was enqueued."},
        401: {"model": Problem},
        404: {"model": Problem},
        413: {"model": Problem, "description": "The body is over API_MAX_BODY_BYTES; nothing was enqueued."},
        503: {
            "model": Problem,
            "description": "The broker or the database cannot be reached; post again (exports are idempotent).",
        },
    },
)
async def post_tenant_exports(
    request: Request, tenant: AuthorisedTenant, found: Annotated[Services, Depends(services)]
) -> PostAccepted:
    """Each export is validated as `syncguard post` does; a rejected one is recorded as a failed export
    of this tenant and counted in `rejected`, and never stops the others. Every export must be for the
    tenant in the path; one for another tenant is rejected (and recorded under this one).

    However many lines are bad, every one is judged, counted and recorded (in bulk, as the body is
    read), and the request's memory does not grow with their number: `rejections` lists the first
    1,000 of each error code and `rejectedByCode` counts all of them."""
    limit = found.settings.api_max_body_bytes
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise _too_large(limit)
    try:
        body = await spool(request.stream(), limit)
    except BodyTooLarge:
        raise _too_large(limit) from None
    try:
        result = await run_in_threadpool(_enqueue, body, tenant.name, found)
    except MalformedBody as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"{exc}; nothing was enqueued") from None
    except BrokerUnreachable as exc:
        partial = getattr(exc, "result", None)  # a post interrupted part-way says how far it got
        done = f"{partial.enqueued} export(s) were enqueued before it failed; " if partial is not None else ""
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the broker could not be reached ({exc}); {done}post the exports again, applying twice is harmless",
        ) from None
    finally:
        body.close()
    return PostAccepted(
        batch=result.batch,
        accepted=result.enqueued,
        rejected=result.rejected_count,
        rejectedByCode=result.rejected_by_code,
        rejections=[Rejection(item=r.line, errorCode=r.code, error=r.error) for r in result.rejected],
    )
