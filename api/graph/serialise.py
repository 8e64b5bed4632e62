"""Objects as Graph shows them: `user`, `group` and `orgContact` with the properties §5 names, and `$select`.

The pydantic models describe the bodies in the OpenAPI document; every property is optional there,
since `$select` leaves the others out. Bodies are built as plain dicts (only what was selected).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.core.timestamps import iso_utc
from shared.queries.graph_ast import Collection
from shared.queries.graph_directory import GraphObject
from shared.queries.graph_filter import GRAPH_PROPERTY_NAMES
from shared.queries.provisioning_errors import ProvisioningErrorRow

ODATA_TYPE = {Collection.USERS: "user", Collection.GROUPS: "group", Collection.CONTACTS: "orgContact"}
_COMMON = ("id", "displayName", "mail", "mailNickname", "proxyAddresses", "onPremisesSyncEnabled")
_PROPERTIES = {
    Collection.USERS: (
        "id",
        "displayName",
        "userPrincipalName",
        "mail",
        "mailNickname",
        "proxyAddresses",
        "onPremisesImmutableId",
        "onPremisesSyncEnabled",
        "onPremisesProvisioningErrors",
    ),
    Collection.GROUPS: (*_COMMON, "onPremisesProvisioningErrors"),
    Collection.CONTACTS: (*_COMMON, "onPremisesProvisioningErrors"),
}


def selectable(collection: Collection) -> tuple[str, ...]:
    return _PROPERTIES[collection]


class OnPremisesProvisioningError(BaseModel):
    category: str = Field(description="PropertyConflict.")
    occurredDateTime: str = Field(description="When the value was quarantined (UTC).")
    propertyCausingError: str = Field(description="UserPrincipalName or ProxyAddress (Graph's spelling).")
    value: str = Field(description="The value the export asked for.")
    conflictingObjectId: str = Field(description="The id of the object that holds the value now (syncguard's).")


class DirectoryObjectBody(BaseModel):
    """A user, group or orgContact; with `$select`, only the selected properties."""

    id: str | None = None
    displayName: str | None = None
    userPrincipalName: str | None = Field(
        None, description="Users: the effective UPN (a placeholder while quarantined)."
    )
    mail: str | None = None
    mailNickname: str | None = None
    proxyAddresses: list[str] | None = Field(None, description="The effective addresses: quarantined ones left out.")
    onPremisesImmutableId: str | None = Field(None, description="Users: the sourceAnchor of the export.")
    onPremisesSyncEnabled: bool | None = None
    onPremisesProvisioningErrors: list[OnPremisesProvisioningError] | None = None


class DirectoryObjectCollection(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    odataContext: str | None = Field(None, alias="@odata.context")
    odataCount: int | None = Field(None, alias="@odata.count", description="With $count=true: all matches.")
    value: list[DirectoryObjectBody]
    odataNextLink: str | None = Field(None, alias="@odata.nextLink", description="The next page; absent on the last.")


def error_body(row: ProvisioningErrorRow) -> dict[str, Any]:
    return {
        "category": row.error_category,
        "occurredDateTime": iso_utc(row.time_occurred),
        "propertyCausingError": GRAPH_PROPERTY_NAMES.get(row.property_name, row.property_name),
        "value": row.property_value,
        "conflictingObjectId": row.conflicting_object_id,
    }


def object_body(obj: GraphObject, collection: Collection, select: tuple[str, ...] | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": obj.object_id,
        "displayName": obj.display_name,
        "userPrincipalName": obj.user_principal_name,
        "mail": obj.mail,
        "mailNickname": obj.mail_nickname,
        "proxyAddresses": list(obj.proxy_addresses),
        "onPremisesImmutableId": obj.source_anchor,
        "onPremisesSyncEnabled": True,
        "onPremisesProvisioningErrors": [error_body(row) for row in obj.errors],
    }
    return {name: values[name] for name in select or _PROPERTIES[collection]}
