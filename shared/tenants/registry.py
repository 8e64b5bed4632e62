"""Tenants and their two resiliency features, which can be enabled but never disabled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.core.export import TENANT_NAME_PATTERN
from shared.core.values import UPN_DOMAIN_MAX, is_valid_smtp_address
from shared.store.tables import Tenant

_DOMAIN = re.compile(
    r"^(?=.{1,48}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


class Feature(StrEnum):
    DUPLICATE_UPN_RESILIENCY = "DuplicateUPNResiliency"
    DUPLICATE_PROXY_ADDRESS_RESILIENCY = "DuplicateProxyAddressResiliency"


_COLUMN = {
    Feature.DUPLICATE_UPN_RESILIENCY: "upn_resiliency",
    Feature.DUPLICATE_PROXY_ADDRESS_RESILIENCY: "proxy_resiliency",
}


class TenantError(Exception):
    """A tenant request that cannot be done; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class TenantSpec:
    name: str
    initial_domain: str
    technical_contacts: tuple[str, ...] = ()
    upn_resiliency: bool = True
    proxy_resiliency: bool = True

    def validate(self) -> None:
        if not re.fullmatch(TENANT_NAME_PATTERN, self.name):
            raise TenantError(
                f"tenant name {self.name!r} is not a slug: use 1-63 lower-case letters, digits and '-', "
                "starting and ending with a letter or digit"
            )
        if not _DOMAIN.fullmatch(self.initial_domain):
            raise TenantError(
                f"initial domain {self.initial_domain!r} is not a domain name of at most {UPN_DOMAIN_MAX} characters"
            )
        for contact in self.technical_contacts:
            if not is_valid_smtp_address(contact):
                raise TenantError(f"technical contact {contact!r} is not a valid email address")


def create_tenant(session: Session, spec: TenantSpec) -> Tenant:
    spec.validate()
    if find(session, spec.name) is not None:
        raise TenantError(f"tenant {spec.name!r} already exists")
    tenant = Tenant(
        name=spec.name,
        initial_domain=spec.initial_domain.lower(),
        technical_contacts=list(spec.technical_contacts),
        upn_resiliency=spec.upn_resiliency,
        proxy_resiliency=spec.proxy_resiliency,
    )
    session.add(tenant)
    try:
        session.flush()
    except IntegrityError:
        raise TenantError(f"tenant {spec.name!r} already exists") from None
    return tenant


def find(session: Session, name: str) -> Tenant | None:
    return session.scalars(select(Tenant).where(Tenant.name == name)).first()


def require(session: Session, name: str) -> Tenant:
    tenant = find(session, name)
    if tenant is None:
        raise TenantError(
            f"tenant {name!r} does not exist; create it with 'syncguard tenant create {name} --initial-domain ...'"
        )
    return tenant


def features(tenant: Tenant) -> dict[Feature, bool]:
    return {feature: bool(getattr(tenant, column)) for feature, column in _COLUMN.items()}


def parse_feature(name: str) -> Feature:
    try:
        return Feature(name)
    except ValueError:
        known = ", ".join(f.value for f in Feature)
        raise TenantError(f"unknown feature {name!r}; known features: {known}") from None


def enable_feature(session: Session, tenant: Tenant, feature: Feature) -> bool:
    """Enable `feature`; returns False when it already was. There is no way back."""
    column = _COLUMN[feature]
    if getattr(tenant, column):
        return False
    setattr(tenant, column, True)
    session.flush()
    return True


def refuse_disable(tenant: Tenant, feature: Feature) -> None:
    """Disabling is never allowed once enabled: quarantines already made rely on it."""
    if features(tenant)[feature]:
        raise TenantError(
            f"{feature.value} is enabled for tenant {tenant.name!r} and can never be disabled; "
            "resolve conflicts by changing the on-premises values instead"
        )
    raise TenantError(f"{feature.value} is already disabled for tenant {tenant.name!r}")
