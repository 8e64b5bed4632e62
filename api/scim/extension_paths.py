"""The bare extension URN spelled out as its attributes' paths, before scim2-models reads a request.

scim2-models 0.12.3 cannot take `urn:syncguard:scim:schemas:extension:directory:2.0` (design §6)
as an attribute path: its grammar (`scim2_models/path/grammar.py`, token `ATTR_PATH`) reads a path
as `[URN ":"] ATTRNAME`, and ATTRNAME starts with a letter, so a bare URN whose last segment is
`2.0` fails with "invalid syntax at column 47". A URN ending in a name (`...:2.0:User`) only parses
because it reads as the attribute `User` of the schema `...:2.0`. The same bug refuses the URN as
a key of a PATCH value without `path` ("is not declared by the resource schema"). Clients do send
the bare URN there (`attributes=`, `excludedAttributes=`, a PATCH `path` or value key), so this
module rewrites it into `URN:attribute` paths, which scim2-models parses; everything else is left
to scim2-models as it stands. Reported upstream as a grammar bug; drop this once a release parses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from scim2_models import Mutability

from api.scim.resources import DIRECTORY_URN, DirectoryExtension


def _attribute_names(writable_only: bool) -> list[str]:
    names = []
    for field_name, field in DirectoryExtension.model_fields.items():
        if field_name == "schemas":
            continue
        if writable_only and DirectoryExtension.get_field_annotation(field_name, Mutability) == Mutability.read_only:
            continue
        names.append(field.serialization_alias or field_name)
    return names


EXTENSION_ATTRIBUTES = _attribute_names(writable_only=False)
WRITABLE_ATTRIBUTES = _attribute_names(writable_only=True)


def is_extension_urn(text: Any) -> bool:
    """Whether `text` is the bare extension URN (URNs compare case-insensitively, RFC 8141 §3)."""
    return isinstance(text, str) and text.strip().lower() == DIRECTORY_URN.lower()


def expanded_names(names: list[str] | None) -> list[str] | None:
    """`attributes`/`excludedAttributes` with the bare URN replaced by each of its attributes."""
    if names is None:
        return None
    found: list[str] = []
    for name in names:
        if is_extension_urn(name):
            found.extend(f"{DIRECTORY_URN}:{attribute}" for attribute in EXTENSION_ATTRIBUTES)
        else:
            found.append(name)
    return found


def _per_attribute(operation: dict[str, Any], value: Any) -> Iterator[dict[str, Any]]:
    """One operation per attribute of an extension value (a non-object value is left to be refused)."""
    if not isinstance(value, dict):
        yield {**operation, "path": DIRECTORY_URN, "value": value}
        return
    for attribute, item in value.items():
        if attribute == "schemas":
            continue
        yield {"op": operation.get("op"), "path": f"{DIRECTORY_URN}:{attribute}", "value": item}


def _spelled_out(operation: Any) -> Iterator[Any]:
    if not isinstance(operation, dict):
        yield operation
        return
    path, value, op = operation.get("path"), operation.get("value"), operation.get("op")
    if is_extension_urn(path):
        if isinstance(op, str) and op.lower() == "remove" and value is None:
            for attribute in WRITABLE_ATTRIBUTES:
                yield {"op": op, "path": f"{DIRECTORY_URN}:{attribute}"}
        else:
            yield from _per_attribute(operation, value)
        return
    if path is None and isinstance(value, dict) and any(is_extension_urn(key) for key in value):
        rest = {key: item for key, item in value.items() if not is_extension_urn(key)}
        if rest:
            yield {**operation, "value": rest}
        for key, item in value.items():
            if is_extension_urn(key):
                yield from _per_attribute(operation, item)
        return
    yield operation


def spelled_out_patch(request: Any) -> Any:
    """A PatchOp body with every operation on the bare URN made one operation per attribute path."""
    if not isinstance(request, dict) or not isinstance(request.get("Operations"), list):
        return request
    operations = [spelled for operation in request["Operations"] for spelled in _spelled_out(operation)]
    return {**request, "Operations": operations}
