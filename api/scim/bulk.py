"""`/scim/v2/Bulk` (RFC 7644 §3.7): many writes in one request, enqueued together, answered together.

Operations are applied in waves: a wave holds every operation whose `bulkId:` references are
resolved and whose object no earlier operation of the same wave writes; its exports go out as one
post (one batch) and are waited for together. A reference to a `bulkId` is resolved to the `id` the
workers gave the created object, so a group can name users created in the same request.
`failOnErrors` stops after that many failed operations; the rest are not attempted.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from scim2_models import Context
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.database import db_session
from api.scim import openapi as bodies
from api.scim.auth import ScimTenant
from api.scim.errors import ScimError, ScimResponse, ScimRoute, translated
from api.scim.mapping import export_attributes, resource_body
from api.scim.patch import patched
from api.scim.resources import KIND_BY_ENDPOINT, Kind
from api.scim.routes import Body_, existing, location, parse_resource
from api.scim.writes import Write, apply_writes, object_locks
from api.services import Services, services
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, Tenant

router = APIRouter(prefix="/scim/v2", route_class=ScimRoute, tags=["SCIM 2.0"])
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
_REFERENCE = re.compile(r"^bulkId:(.+)$")
_STATUS = {"POST": 201, "PUT": 200, "PATCH": 200, "DELETE": 204}


@dataclass(slots=True)
class Operation:
    index: int
    method: str
    path: str
    bulk_id: str | None
    data: Any
    result: dict[str, Any] | None = None
    references: set[str] = field(default_factory=set)


def _references(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        if match:
            found.add(match.group(1))
    elif isinstance(value, dict):
        for item in value.values():
            _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)
    return found


def _resolved(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        match = _REFERENCE.match(value)
        return ids.get(match.group(1), value) if match else value
    if isinstance(value, dict):
        return {key: _resolved(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, ids) for item in value]
    return value


def _operations(body: Any, limit: int) -> tuple[list[Operation], int | None]:
    if not isinstance(body, dict) or BULK_REQUEST not in (body.get("schemas") or []):
        raise ScimError(400, f"the body must be a BulkRequest ({BULK_REQUEST})", "invalidSyntax")
    listed = body.get("Operations")
    if not isinstance(listed, list):
        raise ScimError(400, "a BulkRequest needs an Operations list", "invalidSyntax")
    if len(listed) > limit:
        raise ScimError(
            413, f"the request holds {len(listed)} operations, the limit is {limit} (maxOperations)", "tooMany"
        )
    fail_on_errors = body.get("failOnErrors")
    if fail_on_errors is not None and (
        not isinstance(fail_on_errors, int) or isinstance(fail_on_errors, bool) or fail_on_errors < 1
    ):
        raise ScimError(400, "failOnErrors must be a positive integer", "invalidValue")
    operations = []
    for index, item in enumerate(listed):
        if not isinstance(item, dict):
            raise ScimError(400, f"Operations[{index}] must be an object", "invalidSyntax")
        method, path, bulk_id = item.get("method"), item.get("path"), item.get("bulkId")
        if not isinstance(method, str) or method.upper() not in _STATUS:
            raise ScimError(400, f"Operations[{index}].method must be POST, PUT, PATCH or DELETE", "invalidValue")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ScimError(400, f"Operations[{index}].path must be a resource path such as /Users", "invalidPath")
        if method.upper() == "POST" and not isinstance(bulk_id, str):
            raise ScimError(400, f"Operations[{index}]: a POST needs a bulkId", "invalidValue")
        operation = Operation(
            index, method.upper(), path, bulk_id if isinstance(bulk_id, str) else None, item.get("data")
        )
        operation.references = _references([path, operation.data], set())
        operations.append(operation)
    return operations, fail_on_errors


def _error(operation: Operation, exc: ScimError) -> dict[str, Any]:
    result: dict[str, Any] = {"method": operation.method, "status": str(exc.status), "response": exc.body()}
    if operation.bulk_id:
        result["bulkId"] = operation.bulk_id
    return result


@dataclass(slots=True)
class _Planned:
    operation: Operation
    kind: Kind
    write: Write


def _plan(request: Request, found: Services, tenant: Tenant, operation: Operation, ids: dict[str, str]) -> _Planned:
    """One operation as a write, with its bulkId references resolved; ScimError for bad input."""
    path = _resolved(operation.path, ids)
    data = _resolved(operation.data, ids)
    parts = path.strip("/").split("/")
    kind = KIND_BY_ENDPOINT.get(parts[0])
    if kind is None or len(parts) > 2 or (operation.method == "POST") != (len(parts) == 1):
        raise ScimError(
            400, f"{operation.method} {operation.path} is not a resource path of this service", "invalidPath"
        )
    if operation.method == "POST":
        resource = parse_resource(kind, data, Context.RESOURCE_CREATION_REQUEST)
        anchor = resource.external_id or str(uuid.uuid4())
        return _Planned(
            operation, kind, Write(anchor, kind.object_class.value, "add", export_attributes(kind, resource))
        )
    with transaction(found.settings.database_url) as session:
        current = existing(session, tenant, kind, parts[1])
    anchor = current.row.source_anchor
    if operation.method == "DELETE":
        return _Planned(operation, kind, Write(anchor, kind.object_class.value, "delete"))
    if operation.method == "PUT":
        resource = parse_resource(kind, data, Context.RESOURCE_REPLACEMENT_REQUEST)
        if resource.external_id is not None and resource.external_id != anchor:
            raise ScimError(
                400, f"externalId is the object's sourceAnchor ({anchor!r}) and cannot change", "mutability"
            )
    else:
        desired = resource_body(kind, current, location(request, kind, parts[1]), desired=True)
        resource = patched(kind, desired, data)
    return _Planned(
        operation, kind, Write(anchor, kind.object_class.value, "update", export_attributes(kind, resource))
    )


def _object_ids(found: Services, tenant: Tenant, anchors: list[str]) -> dict[str, tuple[str, bool]]:
    with transaction(found.settings.database_url) as session:
        rows = session.execute(
            select(DirectoryObject.source_anchor, DirectoryObject.object_id, DirectoryObject.deleted).where(
                DirectoryObject.tenant_id == tenant.id, DirectoryObject.source_anchor.in_(anchors)
            )
        )
        return {anchor: (object_id, deleted) for anchor, object_id, deleted in rows}


@router.post(
    "/Bulk",
    summary="Many writes in one request (RFC 7644 §3.7)",
    response_class=ScimResponse,
    openapi_extra=bodies.bulk_body(),
)
def post_bulk(
    request: Request,
    tenant: ScimTenant,
    session: Annotated[Session, Depends(db_session)],
    found: Annotated[Services, Depends(services)],
    body: Body_,
) -> ScimResponse:
    session.commit()  # no connection held while the writes wait on the workers
    operations, fail_on_errors = _operations(body, found.settings.scim_bulk_max_operations)
    ids: dict[str, str] = {}
    failures = 0
    waiting = list(operations)
    while waiting and (fail_on_errors is None or failures < fail_on_errors):
        known = set(ids)
        wave: list[_Planned] = []
        later: list[Operation] = []
        anchors: set[str] = set()
        for operation in waiting:
            if not operation.references <= known:
                later.append(operation)
                continue
            try:
                planned = _plan(request, found, tenant, operation, ids)
            except Exception as exc:
                answer = translated(exc)
                if answer is None:
                    raise
                error = (
                    exc
                    if isinstance(exc, ScimError)
                    else ScimError(answer.status_code, json.loads(bytes(answer.body)).get("detail", ""))
                )
                operation.result = _error(operation, error)
                failures += 1
                continue
            if planned.write.source_anchor in anchors:
                later.append(operation)  # its object is written earlier in this wave: the next one sees it
                continue
            anchors.add(planned.write.source_anchor)
            wave.append(planned)
        if not wave:
            for operation in later:  # what is left refers to a bulkId that failed or never exists
                operation.result = _error(
                    operation,
                    ScimError(409, f"{operation.path}: a bulkId it refers to was not created", "invalidValue"),
                )
                failures += 1
            break
        with object_locks(found, tenant, sorted(anchors)):
            outcomes = apply_writes(found, tenant, [p.write for p in wave])
        created = _object_ids(found, tenant, [p.write.source_anchor for p in wave])
        for planned, outcome in zip(wave, outcomes, strict=True):
            operation = planned.operation
            if not outcome.applied:
                operation.result = _error(operation, outcome.refusal())
                failures += 1
                continue
            object_id, _deleted = created.get(planned.write.source_anchor, ("", True))
            if operation.bulk_id and object_id:
                ids[operation.bulk_id] = object_id
            result: dict[str, Any] = {"method": operation.method, "status": str(_STATUS[operation.method])}
            if operation.bulk_id:
                result["bulkId"] = operation.bulk_id
            if operation.method != "DELETE" and object_id:
                result["location"] = location(request, planned.kind, object_id)
            operation.result = result
        waiting = later
    answered = [o.result for o in operations if o.result is not None]
    return ScimResponse({"schemas": [BULK_RESPONSE], "Operations": answered})
