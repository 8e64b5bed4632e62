"""Response bodies of the API, in Microsoft Graph's naming where Graph has a name for the thing."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.timestamps import iso_utc
from shared.queries.conflict_pages import ConflictedObject
from shared.queries.failures import FailureRow
from shared.queries.objects import ObjectDetail
from shared.queries.provisioning_errors import ProvisioningErrorRow


class Problem(BaseModel):
    detail: str = Field(description="What was wrong and what to do about it.")


class Rejection(BaseModel):
    item: int = Field(description="1-based line number (JSON lines) or position (JSON array) of the export.")
    errorCode: Literal["DataValidationFailed", "LargeObject"] | str
    error: str


class PostAccepted(BaseModel):
    batch: str = Field(description="Id of this request's exports; workers count them under it.")
    accepted: int = Field(description="Exports validated and enqueued.")
    rejected: int = Field(
        description="Exports refused, all of them; each is recorded as a failed export of the tenant."
    )
    rejectedByCode: dict[str, int] = Field(description="`rejected`, counted per error code.")
    rejections: list[Rejection] = Field(
        description="The first 1,000 rejections of each error code, in body order; the others are only "
        "counted here, and recorded as failed exports like these."
    )


class ProvisioningErrorEntry(BaseModel):
    """One `onPremisesProvisioningErrors` item, as Graph names it, plus who holds the value."""

    category: str
    occurredDateTime: str
    propertyCausingError: str
    value: str
    conflictingObjectId: str

    @classmethod
    def of(cls, row: ProvisioningErrorRow) -> ProvisioningErrorEntry:
        return cls(
            category=row.error_category,
            occurredDateTime=iso_utc(row.time_occurred) or "",
            propertyCausingError=row.property_name,
            value=row.property_value,
            conflictingObjectId=row.conflicting_object_id,
        )


class ConflictedObjectView(BaseModel):
    id: str = Field(description="The objectId the service assigned.")
    sourceAnchor: str
    objectType: Literal["User", "Group", "Contact"] | str
    displayName: str | None
    userPrincipalName: str | None = Field(description="The effective UPN (a placeholder while quarantined).")
    onPremisesProvisioningErrors: list[ProvisioningErrorEntry]

    @classmethod
    def of(cls, obj: ConflictedObject) -> ConflictedObjectView:
        return cls(
            id=obj.object_id,
            sourceAnchor=obj.source_anchor,
            objectType=obj.object_type,
            displayName=obj.display_name,
            userPrincipalName=obj.user_principal_name,
            onPremisesProvisioningErrors=[ProvisioningErrorEntry.of(e) for e in obj.entries],
        )


class ConflictedObjectPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[ConflictedObjectView]
    nextLink: str | None = Field(None, alias="@odata.nextLink", description="The next page; absent on the last one.")


class DirectoryObjectView(BaseModel):
    id: str
    sourceAnchor: str
    objectType: str
    displayName: str | None
    userPrincipalName: str | None = Field(description="The effective (cloud) UPN.")
    proxyAddresses: list[str] = Field(description="The effective proxy addresses: quarantined ones left out.")
    onPremisesProvisioningErrors: list[ProvisioningErrorEntry]

    @classmethod
    def of(cls, detail: ObjectDetail) -> DirectoryObjectView:
        return cls(
            id=detail.object_id,
            sourceAnchor=detail.source_anchor,
            objectType=detail.object_type,
            displayName=detail.display_name,
            userPrincipalName=detail.user_principal_name,
            proxyAddresses=list(detail.proxy_addresses),
            onPremisesProvisioningErrors=[ProvisioningErrorEntry.of(e) for e in detail.provisioning_errors],
        )


class FailureView(BaseModel):
    sourceAnchor: str | None
    objectType: str | None
    errorCode: str
    message: str
    firstFailed: str
    lastFailed: str
    attempts: int

    @classmethod
    def of(cls, row: FailureRow) -> FailureView:
        return cls.model_validate(row.as_json())


class FailureList(BaseModel):
    value: list[FailureView]


class Features(BaseModel):
    DuplicateUPNResiliency: bool
    DuplicateProxyAddressResiliency: bool


class FeatureChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="true enables the feature for good; false is refused (409) once enabled.")


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str
    redis: str
