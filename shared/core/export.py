"""The export message (docs/design.md §2) and its validation into a domain `Export`.

Everything a producer can get wrong becomes an `ExportRejected` carrying an error code and a
message that names the field and the value, so the worker records it and moves on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.core.values import InvalidValue, ProxyAddress, parse_proxy_address, validate_upn

TENANT_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
MAX_MESSAGE_BYTES = 1_048_576
MAX_TEXT_ATTRIBUTE = 256
MAX_NESTING = 32
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


class ErrorCode(StrEnum):
    DATA_VALIDATION_FAILED = "DataValidationFailed"
    LARGE_OBJECT = "LargeObject"
    ATTRIBUTE_VALUE_MUST_BE_UNIQUE = "AttributeValueMustBeUnique"
    # A dead letter: retries ran out, an unexpected error, or the export kept killing its worker.
    APPLY_FAILED = "ApplyFailed"


class ObjectClass(StrEnum):
    USER = "User"
    GROUP = "Group"
    CONTACT = "Contact"


class ExportRejected(Exception):
    """An export that can never succeed as sent; recorded as a failed export, never retried."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        tenant: str | None = None,
        source_anchor: str | None = None,
        object_class: str | None = None,
        raw: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.tenant = tenant
        self.source_anchor = source_anchor
        self.object_class = object_class
        self.raw = raw


class ExportMessage(BaseModel):
    """The wire format, exactly as docs/design.md §2 gives it; strict so `"1"` is not a sequence."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tenant: Annotated[str, StringConstraints(pattern=TENANT_NAME_PATTERN)]
    sourceAnchor: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    objectClass: Literal["User", "Group", "Contact"]
    operation: Literal["add", "update", "delete"]
    sequence: Annotated[int, Field(ge=0, le=2**63 - 1)]
    attributes: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Export:
    """A validated export: the object's full desired state (or its deletion)."""

    tenant: str
    source_anchor: str
    object_class: ObjectClass
    operation: Literal["add", "update", "delete"]
    sequence: int
    display_name: str | None = None
    upn: str | None = None
    proxy_addresses: tuple[ProxyAddress, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def is_delete(self) -> bool:
        return self.operation == "delete"

    def to_message(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "sourceAnchor": self.source_anchor,
            "objectClass": self.object_class.value,
            "operation": self.operation,
            "sequence": self.sequence,
            "attributes": self.attributes,
        }


def _shorten(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        if item["type"] == "missing":
            parts.append(f"field {where!r} is missing")
        elif item["type"] == "extra_forbidden":
            parts.append(f"field {where!r} is not part of an export")
        else:
            parts.append(f"field {where!r}: {item['msg']} (got {_shorten(item.get('input'))})")
    return "; ".join(parts)


def _decode(raw: str | bytes | dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Turn what arrived into a JSON object plus its text (kept for the failure record)."""
    if isinstance(raw, dict):
        text = json.dumps(raw, ensure_ascii=False, default=str)
        if len(text.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:  # a producer may skip the text form
            raise ExportRejected(
                ErrorCode.LARGE_OBJECT, f"the message is larger than {MAX_MESSAGE_BYTES} bytes", raw=text[:4096]
            )
        return raw, text
    if not isinstance(raw, str | bytes):  # a list, a number, null: decoded JSON that is no export
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED,
            f"the message must be a JSON object, not {type(raw).__name__}",
            raw=json.dumps(raw, ensure_ascii=False, default=str)[:4096],
        )
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ExportRejected(
                ErrorCode.LARGE_OBJECT,
                f"the message is {len(raw)} bytes, the limit is {MAX_MESSAGE_BYTES}",
                raw=raw[:4096].decode("utf-8", "replace"),
            )
        raw = raw.decode("utf-8", "replace")
    if len(raw.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
        raise ExportRejected(
            ErrorCode.LARGE_OBJECT, f"the message is larger than {MAX_MESSAGE_BYTES} bytes", raw=raw[:4096]
        )
    try:
        decoded = json.loads(raw)
    except RecursionError:
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED, "the message is not valid JSON: it is nested too deeply", raw=raw
        ) from None
    except ValueError as exc:
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED, f"the message is not valid JSON: {exc}", raw=raw
        ) from None
    if not isinstance(decoded, dict):
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED,
            f"the message must be a JSON object, not {type(decoded).__name__}",
            raw=raw,
        )
    return decoded, raw


def _identity(decoded: dict[str, Any]) -> dict[str, str | None]:
    """Whatever identifies the object, when it is usable, so a failure is filed against it."""

    def text(name: str) -> str | None:
        value = decoded.get(name)
        usable = isinstance(value, str) and 0 < len(value) <= 256 and not _UNSTORABLE.search(value)
        return value if usable else None

    return {"tenant": text("tenant"), "source_anchor": text("sourceAnchor"), "object_class": text("objectClass")}


def _check_text(text: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidValue(f"{what} a NUL character")
    if _LONE_SURROGATE.search(text):
        raise InvalidValue(f"{what} a lone surrogate (half of a UTF-16 pair), which is not valid Unicode")


def _check_json_values(value: Any, path: str, depth: int = 0) -> None:
    """PostgreSQL stores neither NUL nor lone surrogates, and deep nesting is a denial of service."""
    if depth > MAX_NESTING:
        raise InvalidValue(f"{path} is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, str):
        _check_text(value, f"{path} holds")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path} has a key with")
            _check_json_values(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_values(item, f"{path}[{index}]", depth + 1)


def _optional_text(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidValue(f"attributes.{name} must be a string, not {type(value).__name__}")
    if len(value) > MAX_TEXT_ATTRIBUTE:
        raise InvalidValue(
            f"attributes.{name} is {len(value)} characters long, the limit is {MAX_TEXT_ATTRIBUTE}", too_large=True
        )
    if any(ord(c) < 32 for c in value):
        raise InvalidValue(f"attributes.{name} {_shorten(value)} holds control characters")
    return value


def _proxy_addresses(attributes: dict[str, Any], max_proxy_addresses: int) -> tuple[ProxyAddress, ...]:
    values = attributes.get("proxyAddresses")
    if values is None:
        return ()
    if not isinstance(values, list):
        raise InvalidValue(f"attributes.proxyAddresses must be a list of strings, not {type(values).__name__}")
    if len(values) > max_proxy_addresses:
        raise InvalidValue(
            f"attributes.proxyAddresses has {len(values)} values, the limit is {max_proxy_addresses}", too_large=True
        )
    parsed: list[ProxyAddress] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(values):
        if not isinstance(raw, str):
            raise InvalidValue(f"attributes.proxyAddresses[{index}] must be a string, not {type(raw).__name__}")
        try:
            proxy = parse_proxy_address(raw)
        except InvalidValue as exc:
            raise InvalidValue(
                f"attributes.proxyAddresses[{index}] {_shorten(raw)} {exc}", too_large=exc.too_large
            ) from None
        identity = proxy.key if proxy.is_smtp else raw.lower()
        if identity in seen:
            raise InvalidValue(
                f"attributes.proxyAddresses holds {_shorten(seen[identity])} and {_shorten(raw)}, which are the same address"
            )
        seen[identity] = raw
        parsed.append(proxy)
    return tuple(parsed)


def parse_export(raw: str | bytes | dict[str, Any], *, max_proxy_addresses: int = 300) -> Export:
    """Validate one export message; raise `ExportRejected` with a code and a precise message."""
    decoded, text = _decode(raw)
    identity = _identity(decoded)
    try:
        message = ExportMessage.model_validate(decoded)
    except ValidationError as exc:
        raise ExportRejected(
            ErrorCode.DATA_VALIDATION_FAILED, _describe_validation_error(exc), raw=text, **identity
        ) from None
    object_class = ObjectClass(message.objectClass)
    attributes = message.attributes
    try:
        _check_json_values(message.sourceAnchor, "sourceAnchor")
        _check_json_values(attributes, "attributes")
        if message.operation == "delete":
            return Export(message.tenant, message.sourceAnchor, object_class, "delete", message.sequence)
        display_name = _optional_text(attributes, "displayName")
        for name in ("mail", "mailNickname"):
            _optional_text(attributes, name)
        upn = attributes.get("userPrincipalName")
        if object_class is ObjectClass.USER:
            if upn is None:
                raise InvalidValue("a User needs attributes.userPrincipalName")
            if not isinstance(upn, str):
                raise InvalidValue(f"attributes.userPrincipalName must be a string, not {type(upn).__name__}")
            try:
                validate_upn(upn)
            except InvalidValue as exc:
                raise InvalidValue(
                    f"attributes.userPrincipalName {_shorten(upn)} {exc}", too_large=exc.too_large
                ) from None
        elif upn is not None:
            raise InvalidValue(f"a {object_class.value} cannot have attributes.userPrincipalName (only Users have one)")
        proxies = _proxy_addresses(attributes, max_proxy_addresses)
    except InvalidValue as exc:
        code = ErrorCode.LARGE_OBJECT if exc.too_large else ErrorCode.DATA_VALIDATION_FAILED
        raise ExportRejected(code, str(exc), raw=text, **identity) from None
    return Export(
        tenant=message.tenant,
        source_anchor=message.sourceAnchor,
        object_class=object_class,
        operation=message.operation,
        sequence=message.sequence,
        display_name=display_name,
        upn=upn,
        proxy_addresses=proxies,
        attributes=dict(attributes),
    )
