"""`$filter` parsing without a database: the spellings Graph accepts, and what is refused before any SQL."""

from __future__ import annotations

import pytest

from shared.queries.graph_ast import (
    AnyElement,
    Collection,
    Comparison,
    Constant,
    Junction,
    Negation,
    UnsupportedQuery,
    parse_filter,
)


def test_a_one_item_in_list_is_a_list_as_odata_says() -> None:
    assert parse_filter("mail in ('a@b.c')", Collection.USERS) == Comparison("mail", "in", ("a@b.c",))
    assert parse_filter("id in ('x', 'y') and mail in ('z')", Collection.GROUPS) == Junction(
        "and", Comparison("id", "in", ("x", "y")), Comparison("mail", "in", ("z",))
    )


def test_not_with_parentheses_is_not() -> None:
    expected = Negation(Comparison("displayName", "startswith", ("a",)))
    assert parse_filter("not(startswith(displayName,'a'))", Collection.USERS) == expected
    assert parse_filter("NOT (startswith(displayName,'a'))", Collection.USERS) == expected


def test_any_over_errors_and_addresses() -> None:
    assert parse_filter("onPremisesProvisioningErrors/any(e:e/Category eq 'x')", Collection.CONTACTS) == AnyElement(
        "onPremisesProvisioningErrors", Comparison("category", "eq", ("x",))
    )
    assert parse_filter("proxyAddresses/any(a:a eq 'smtp:x@y.z')", Collection.GROUPS) == AnyElement(
        "proxyAddresses", Comparison("", "eq", ("smtp:x@y.z",))
    )
    assert parse_filter("onPremisesSyncEnabled eq true", Collection.USERS) == Constant(True)


@pytest.mark.parametrize(
    ("text", "bad_request"),
    [
        ("displayName eq", True),
        ("nosuch(displayName)", True),
        ("displayName lt 'b'", False),
        ("proxyAddresses/any(x:proxyAddresses/any(y:y eq 'a'))", False),
        ("onPremisesImmutableId eq 'a'", False),  # users only; this is a group
        ("mail in (" + ",".join("'a'" for _ in range(101)) + ")", False),
        ("not " * 50 + "mail eq 'a'", False),  # deeper than MAX_DEPTH
    ],
)
def test_what_cannot_be_answered_exactly_is_refused(text: str, bad_request: bool) -> None:
    with pytest.raises(UnsupportedQuery) as refused:
        parse_filter(text, Collection.GROUPS)
    assert refused.value.bad_request is bad_request
