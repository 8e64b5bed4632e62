"""The SCIM resources syncguard serves (design §6), declared with scim2-models' own base classes.

User and Group are the core schemas; Contact is ours. All three carry the directory extension:
`proxyAddresses` (written by the client) and the read-only `onPremisesProvisioningErrors` (the
quarantines syncguard made). `externalId` is the object's sourceAnchor, its identity in syncguard, so
it cannot change once set: a write that changes it is refused with `mutability`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from scim2_models import (
    URN,
    ComplexAttribute,
    Email,
    Extension,
    Group,
    Mutability,
    Name,
    Required,
    Resource,
    ResourceType,
    Schema,
    User,
)

from shared.core.export import ObjectClass

DIRECTORY_URN = "urn:syncguard:scim:schemas:extension:directory:2.0"
CONTACT_URN = "urn:syncguard:scim:schemas:Contact"


class ProvisioningErrorEntry(ComplexAttribute):
    """One quarantined value: what the object asked for and who holds it (Graph's names, §5)."""

    category: Annotated[str | None, Mutability.read_only] = None
    occurred_date_time: Annotated[str | None, Mutability.read_only] = None
    property_causing_error: Annotated[str | None, Mutability.read_only] = None
    value: Annotated[str | None, Mutability.read_only] = None
    conflicting_object_id: Annotated[str | None, Mutability.read_only] = None


class DirectoryExtension(Extension):
    """syncguard's directory attributes of every resource: addresses and the quarantines."""

    __schema__ = URN(DIRECTORY_URN)

    proxy_addresses: list[str] | None = None
    """`SMTP:` (primary), `smtp:` and other `TYPE:value` addresses; a taken SMTP one is left out."""

    on_premises_provisioning_errors: Annotated[list[ProvisioningErrorEntry] | None, Mutability.read_only] = None
    """The values this object waits for, each naming the object that holds it."""


class Contact(Resource[Any]):
    """An organisational contact: a mail-enabled object that is no user of the tenant."""

    __schema__ = URN(CONTACT_URN)

    display_name: Annotated[str | None, Required.true] = None
    name: Name | None = None
    emails: list[Email] | None = None


ScimUser = User[DirectoryExtension]
ScimGroup = Group[DirectoryExtension]  # type: ignore[type-arg]  # scim2-models types Group as not generic
ScimContact = Contact[DirectoryExtension]  # type: ignore[type-arg]


@dataclass(frozen=True, slots=True)
class Kind:
    """One resource type: its model, endpoint and the object class its exports carry."""

    name: str
    endpoint: str
    model: type[Resource[Any]]
    object_class: ObjectClass
    description: str

    @property
    def core_schema(self) -> str:
        return str(self.model.__schema__)

    @property
    def schemas(self) -> list[str]:
        return [self.core_schema, DIRECTORY_URN]

    def resource_type(self) -> ResourceType:
        resource_type = ResourceType.from_resource(self.model)
        resource_type.description = self.description
        return resource_type


USERS = Kind("User", "Users", ScimUser, ObjectClass.USER, "A user; userName is its userPrincipalName.")
GROUPS = Kind("Group", "Groups", ScimGroup, ObjectClass.GROUP, "A group; members are kept as given.")
CONTACTS = Kind("Contact", "Contacts", ScimContact, ObjectClass.CONTACT, "An organisational contact.")
KINDS = (USERS, GROUPS, CONTACTS)
KIND_BY_ENDPOINT = {kind.endpoint: kind for kind in KINDS}
KIND_BY_CLASS = {kind.object_class.value: kind for kind in KINDS}


def schemas() -> list[Schema]:
    """What /Schemas publishes: the three resources' schemas and the extension's."""
    published = [User.to_schema(), Group.to_schema(), Contact.to_schema(), DirectoryExtension.to_schema()]
    published[2].name, published[2].description = "Contact", "An organisational contact (syncguard)"
    published[3].name, published[3].description = "Directory", "syncguard's directory attributes"
    return published
