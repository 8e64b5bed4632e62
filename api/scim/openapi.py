"""The request bodies the SCIM routes declare in the OpenAPI document.

The routes read their bodies themselves (any JSON content type, a SCIM error for bad JSON, never
FastAPI's), so FastAPI cannot infer them. These schemas come from the scim2-models classes the routes
validate with, so what a client generator or schemathesis reads is what the service takes.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from scim2_models import BulkRequest, PatchOp, SearchRequest

from api.scim.resources import Kind

MEDIA_TYPES = ("application/scim+json", "application/json")


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with every `#/$defs/...` reference replaced by its definition.

    Inside an OpenAPI document `#` is the document, not the schema, so pydantic's local references
    would point nowhere; scim2-models' definitions are not recursive, so inlining always ends.
    """
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inlined(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    return node


def _body(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    inlined = _inlined(schema, schema.get("$defs", {}))
    content = {media_type: {"schema": inlined} for media_type in MEDIA_TYPES}
    return {"requestBody": {"required": True, "content": content}}


def resource_body(kind: Kind) -> dict[str, Any]:
    """POST and PUT: the resource itself, core schema and extension."""
    return _body(kind.model)


def patch_body(kind: Kind) -> dict[str, Any]:
    """PATCH: a PatchOp (RFC 7644 §3.5.2) on this resource type."""
    return _body(PatchOp[kind.model])  # type: ignore[name-defined]


def search_body() -> dict[str, Any]:
    """POST .search: a SearchRequest (RFC 7644 §3.4.3)."""
    return _body(SearchRequest)


def bulk_body() -> dict[str, Any]:
    """POST /Bulk: a BulkRequest (RFC 7644 §3.7)."""
    return _body(BulkRequest)
