"""PATCH (RFC 7644 §3.5.2) applied to an object's desired state, with no I/O: a pure function.

scim2-models implements the operations (`add`, `replace`, `remove`, with and without `path`, value
filters such as `emails[type eq "work"].value`); this module only binds them to our resources and
refuses what syncguard cannot store (the bare extension URN is spelled out first, see
`extension_paths`), so the export that follows is the object's full desired state.
"""

from __future__ import annotations

from typing import Any

from scim2_models import Context, PatchOp, Resource

from api.scim.errors import ScimError
from api.scim.extension_paths import spelled_out_patch
from api.scim.resources import Kind


def patched(kind: Kind, desired: dict[str, Any], request: Any) -> Resource[Any]:
    """The resource `desired` after the PATCH request body `request` (raises ScimError on bad input)."""
    resource = kind.model.model_validate(desired)
    operations = PatchOp[kind.model].model_validate(spelled_out_patch(request), scim_ctx=Context.RESOURCE_PATCH_REQUEST)  # type: ignore[name-defined]
    operations.patch(resource)
    if resource.external_id != desired.get("externalId"):
        raise ScimError(
            400,
            f"externalId is the object's sourceAnchor ({desired.get('externalId')!r}) and cannot change",
            "mutability",
        )
    return resource
