"""The mapping of §6 both ways: a SCIM resource to an export's attributes, a stored object to a resource.

externalId = sourceAnchor, id = objectId, userName = userPrincipalName (the effective one on the
way out: the placeholder while quarantined), displayName, emails (the primary one, else the first,
is `mail`), active, and the extension's proxyAddresses (the effective ones on the way out). The rest
of the resource as the client gave it is kept in the export's attributes under `scim` (a password
never: syncguard does not keep secrets it cannot use), so a GET returns what was written.
"""

from __future__ import annotations

from typing import Any

from scim2_models import Context, Resource

from api.scim.resources import DIRECTORY_URN, Kind
from shared.core.timestamps import iso_utc
from shared.queries.graph_filter import GRAPH_PROPERTY_NAMES
from shared.queries.scim_directory import ScimObject

_NOT_KEPT = ("schemas", "id", "externalId", "meta", "password", "groups", DIRECTORY_URN)


def stored_form(resource: Resource[Any]) -> dict[str, Any]:
    """What of a resource syncguard keeps as given: every writable attribute but the mapped ones."""
    dumped = resource.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    return {key: value for key, value in dumped.items() if key not in _NOT_KEPT}


def _primary_email(emails: Any) -> str | None:
    if not isinstance(emails, list) or not emails:
        return None
    chosen = next((e for e in emails if isinstance(e, dict) and e.get("primary")), emails[0])
    value = chosen.get("value") if isinstance(chosen, dict) else None
    return value if isinstance(value, str) else None


def export_attributes(kind: Kind, resource: Resource[Any]) -> dict[str, Any]:
    """The export's full desired attributes (§2) for a resource as the client wants it."""
    kept = stored_form(resource)
    attributes: dict[str, Any] = {"scim": kept}
    display_name = kept.get("displayName")
    if display_name is not None:
        attributes["displayName"] = display_name
    if kind.name == "User":
        attributes["userPrincipalName"] = kept.pop("userName", None)
        attributes["active"] = kept.get("active", True)
    mail = _primary_email(kept.get("emails"))
    if mail is not None:
        attributes["mail"] = mail
    extension = resource.model_dump(scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST).get(DIRECTORY_URN) or {}
    attributes["proxyAddresses"] = list(extension.get("proxyAddresses") or [])
    return attributes


def resource_body(kind: Kind, found: ScimObject, location: str, *, desired: bool = False) -> dict[str, Any]:
    """The resource as stored, as a SCIM payload (validated by `kind.model` before it goes out).

    `desired`: the values the client asked for instead of the effective ones (the wanted UPN, every
    wanted address), which is what a PATCH applies to, so a quarantine is never written back as wish.
    """
    row = found.row
    body: dict[str, Any] = dict((row.attributes or {}).get("scim") or {})
    body["schemas"] = kind.schemas
    body["id"] = row.object_id
    body["externalId"] = row.source_anchor
    if kind.name == "User":
        body["userName"] = row.wanted_upn if desired else row.upn
    if row.display_name is not None:
        body["displayName"] = row.display_name
    else:
        body.pop("displayName", None)
    errors = [
        {
            "category": e.error_category,
            "occurredDateTime": iso_utc(e.time_occurred),
            "propertyCausingError": GRAPH_PROPERTY_NAMES.get(e.property_name, e.property_name),
            "value": e.property_value,
            "conflictingObjectId": e.conflicting_object_id,
        }
        for e in found.errors
    ]
    extension: dict[str, Any] = {}
    if row.proxy_addresses or row.wanted_proxy_addresses:
        extension["proxyAddresses"] = list((row.wanted_proxy_addresses if desired else row.proxy_addresses) or [])
    if errors and not desired:
        extension["onPremisesProvisioningErrors"] = errors
    if extension:
        body[DIRECTORY_URN] = extension
    modified = iso_utc(row.updated_at)
    body["meta"] = {
        "resourceType": kind.name,
        "lastModified": modified,
        "location": location,
        "version": f'W/"{row.last_sequence}"',
    }
    return body
