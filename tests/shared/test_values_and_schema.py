"""Value rules and export validation: every bad input gets its code and a message naming it."""

from __future__ import annotations

import json

import pytest

from shared.core.export import ErrorCode, ExportRejected, ObjectClass, parse_export
from shared.core.values import (
    InvalidValue,
    is_placeholder_for,
    parse_proxy_address,
    placeholder_upn,
    validate_upn,
    value_key,
)


def message(**overrides: object) -> str:
    base: dict[str, object] = {
        "tenant": "contoso",
        "sourceAnchor": "a1",
        "objectClass": "User",
        "operation": "add",
        "sequence": 1,
        "attributes": {"userPrincipalName": "bob@contoso.com"},
    }
    base.update(overrides)
    return json.dumps(base)


def rejection(raw: str) -> ExportRejected:
    with pytest.raises(ExportRejected) as caught:
        parse_export(raw)
    return caught.value


def test_upn_and_smtp_share_one_case_insensitive_key() -> None:
    assert value_key("Bob@Contoso.COM") == value_key("bob@contoso.com")
    assert (
        parse_proxy_address("SMTP:Bob@Contoso.com").key
        == parse_proxy_address("smtp:bob@contoso.com").key
        == "bob@contoso.com"
    )
    assert not parse_proxy_address("X500:/o=x").is_smtp


@pytest.mark.parametrize(
    "upn, fragment",
    [
        ("no-at-sign", "prefix@domain"),
        ("bo b@contoso.com", "' '"),
        ("a+b@contoso.com", "'+'"),
        (".dot@contoso.com", "'.'"),
        ("bob@not_a_domain", "invalid domain"),
    ],
)
def test_malformed_upns_are_refused(upn: str, fragment: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_upn(upn)
    assert fragment in str(caught.value) and not caught.value.too_large


@pytest.mark.parametrize(
    "upn", ["a" * 65 + "@contoso.com", "bob@" + "d" * 45 + ".com", "a" * 64 + "@" + "d" * 44 + ".com" + "x" * 10]
)
def test_too_long_upns_are_large_objects(upn: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_upn(upn)
    assert caught.value.too_large


def test_the_placeholder_keeps_the_prefix_within_64_characters_and_is_recognised() -> None:
    wanted = "p" * 64 + "@contoso.com"
    placeholder = placeholder_upn(wanted, 7, "contoso.onmicrosoft.com")
    prefix = placeholder.partition("@")[0]
    assert len(prefix) == 64 and prefix.endswith("+0007")
    assert is_placeholder_for(placeholder, wanted, "contoso.onmicrosoft.com")
    assert not is_placeholder_for("bob@contoso.com", "bob@contoso.com", "contoso.onmicrosoft.com")


def test_a_valid_export_keeps_every_attribute_as_given() -> None:
    export = parse_export(
        message(
            attributes={
                "userPrincipalName": "bob@contoso.com",
                "department": {"x": [1]},
                "proxyAddresses": ["SMTP:bob@contoso.com", "X500:/o=a"],
            }
        )
    )
    assert export.object_class is ObjectClass.USER
    assert export.attributes["department"] == {"x": [1]}
    assert [p.raw for p in export.proxy_addresses] == ["SMTP:bob@contoso.com", "X500:/o=a"]


@pytest.mark.parametrize(
    "raw, code, fragment",
    [
        ("{", ErrorCode.DATA_VALIDATION_FAILED, "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, ErrorCode.DATA_VALIDATION_FAILED, "nested too deeply"),
        (message(extra=1), ErrorCode.DATA_VALIDATION_FAILED, "'extra' is not part of an export"),
        (message(sequence=-1), ErrorCode.DATA_VALIDATION_FAILED, "sequence"),
        (message(sequence=2**63), ErrorCode.DATA_VALIDATION_FAILED, "sequence"),
        (message(sequence=True), ErrorCode.DATA_VALIDATION_FAILED, "sequence"),
        (message(tenant="Not A Slug"), ErrorCode.DATA_VALIDATION_FAILED, "tenant"),
        (message(operation="merge"), ErrorCode.DATA_VALIDATION_FAILED, "operation"),
        (message(attributes={"userPrincipalName": 5}), ErrorCode.DATA_VALIDATION_FAILED, "must be a string"),
        (
            message(attributes={"userPrincipalName": "b@c.com", "displayName": "a\x00b"}),
            ErrorCode.DATA_VALIDATION_FAILED,
            "NUL",
        ),
        (
            message(attributes={"userPrincipalName": "b@c.com", "proxyAddresses": "SMTP:b@c.com"}),
            ErrorCode.DATA_VALIDATION_FAILED,
            "list",
        ),
        (
            message(attributes={"userPrincipalName": "b@c.com", "proxyAddresses": ["SMTP:b@c.com", "smtp:B@C.com"]}),
            ErrorCode.DATA_VALIDATION_FAILED,
            "same address",
        ),
        (
            message(attributes={"userPrincipalName": "b@c.com", "proxyAddresses": ["nocolon"]}),
            ErrorCode.DATA_VALIDATION_FAILED,
            "TYPE:value",
        ),
        (
            message(attributes={"userPrincipalName": "b@c.com", "displayName": "x" * 300}),
            ErrorCode.LARGE_OBJECT,
            "limit is 256",
        ),
        (
            message(attributes={"userPrincipalName": "b@c.com", "proxyAddresses": ["X500:" + "x" * 2000]}),
            ErrorCode.LARGE_OBJECT,
            "limit is 1123",
        ),
    ],
)
def test_bad_exports_get_their_code_and_a_message_that_names_the_problem(
    raw: str, code: ErrorCode, fragment: str
) -> None:
    rejected = rejection(raw)
    assert rejected.code is code
    assert fragment in rejected.message


def test_a_rejection_keeps_the_objects_identity_and_the_raw_text() -> None:
    raw = message(objectClass="Printer")
    rejected = rejection(raw)
    assert (rejected.tenant, rejected.source_anchor, rejected.raw) == ("contoso", "a1", raw)
