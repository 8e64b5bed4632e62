"""The unique-value namespace: parsing, validating and normalising UPNs and proxy addresses.

A User's UPN and every SMTP proxy address share one namespace per tenant, compared
case-insensitively, so both normalise to the same key: the lower-cased address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UPN_MAX = 113
UPN_PREFIX_MAX = 64
UPN_DOMAIN_MAX = 48
PROXY_ADDRESS_MAX = 1123  # Active Directory's limit for one proxyAddresses value
PLACEHOLDER_DIGITS = 4

_UPN_PREFIX_CHARS = re.compile(r"[A-Za-z0-9'.\-_!#^~]+")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_SMTP_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_PROXY_TYPE = re.compile(r"[A-Za-z0-9]{1,16}")


class InvalidValue(ValueError):
    """A value breaks a syntax rule (DataValidationFailed) or a size rule (LargeObject)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def value_key(address: str) -> str:
    """The namespace key of a UPN or SMTP address: case never makes two values different."""
    return address.lower()


def validate_upn(upn: str) -> str:
    """Check a UPN against the directory's rules; return it unchanged."""
    if len(upn) > UPN_MAX:
        raise InvalidValue(f"is {len(upn)} characters long, the limit is {UPN_MAX}", too_large=True)
    prefix, at, domain = upn.rpartition("@")
    if not at or not prefix or not domain:
        raise InvalidValue("must have the form prefix@domain")
    if len(prefix) > UPN_PREFIX_MAX:
        raise InvalidValue(f"has a {len(prefix)}-character prefix, the limit is {UPN_PREFIX_MAX}", too_large=True)
    if len(domain) > UPN_DOMAIN_MAX:
        raise InvalidValue(f"has a {len(domain)}-character domain, the limit is {UPN_DOMAIN_MAX}", too_large=True)
    bad = sorted({c for c in prefix if not _UPN_PREFIX_CHARS.fullmatch(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidValue(
            f"has characters not allowed in a UPN prefix: {shown} (allowed: A-Z a-z 0-9 ' . - _ ! # ^ ~)"
        )
    if prefix.startswith(".") or prefix.endswith(".") or ".." in prefix:
        raise InvalidValue("has a prefix that starts or ends with '.' or holds '..'")
    if not _DOMAIN.fullmatch(domain):
        raise InvalidValue(f"has an invalid domain {domain!r}")
    return upn


def is_valid_smtp_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and len(local) <= 64 and _SMTP_LOCAL.fullmatch(local) and _DOMAIN.fullmatch(domain))


@dataclass(frozen=True, slots=True)
class ProxyAddress:
    """One `TYPE:value` entry; only SMTP ones take part in the unique namespace."""

    raw: str
    type: str
    address: str

    @property
    def is_smtp(self) -> bool:
        return self.type.lower() == "smtp"

    @property
    def key(self) -> str:
        return value_key(self.address)


def parse_proxy_address(raw: str) -> ProxyAddress:
    """Parse and validate a `TYPE:value` proxy address."""
    if len(raw) > PROXY_ADDRESS_MAX:
        raise InvalidValue(f"is {len(raw)} characters long, the limit is {PROXY_ADDRESS_MAX}", too_large=True)
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise InvalidValue("holds control characters")
    kind, colon, address = raw.partition(":")
    if not colon or not _PROXY_TYPE.fullmatch(kind):
        raise InvalidValue("must have the form TYPE:value, for example SMTP:bob@contoso.com")
    if not address.strip():
        raise InvalidValue(f"has no value after {kind}:")
    proxy = ProxyAddress(raw=raw, type=kind, address=address)
    if proxy.is_smtp and not is_valid_smtp_address(address):
        raise InvalidValue(f"holds {address!r}, which is not a valid SMTP address")
    return proxy


def placeholder_prefix(wanted_upn: str) -> str:
    """The part of the wanted UPN kept in its placeholder, short enough for `prefix+NNNN`."""
    prefix = wanted_upn.rpartition("@")[0] or wanted_upn
    return prefix[: UPN_PREFIX_MAX - 1 - PLACEHOLDER_DIGITS]


def placeholder_upn(wanted_upn: str, digits: int, initial_domain: str) -> str:
    """`<prefix>+<4 digits>@<initial domain>`: `+` never appears in a synced UPN, so no real UPN collides."""
    return f"{placeholder_prefix(wanted_upn)}+{digits:0{PLACEHOLDER_DIGITS}d}@{initial_domain}"


def is_placeholder_for(upn: str | None, wanted_upn: str, initial_domain: str) -> bool:
    """Whether `upn` is a placeholder we would have made for `wanted_upn`, so it can be kept."""
    if not upn:
        return False
    head = f"{placeholder_prefix(wanted_upn)}+"
    tail = f"@{initial_domain}"
    middle = upn[len(head) : len(upn) - len(tail)]
    return (
        upn.lower().startswith(head.lower())
        and upn.lower().endswith(tail.lower())
        and len(middle) == PLACEHOLDER_DIGITS
        and middle.isdigit()
    )
