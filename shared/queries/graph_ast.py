"""A Graph `$filter` parsed and checked against what a collection can answer, as a small tree of our own.

odata-query (a maintained OData v4 parser) turns the text into its AST; this module accepts only
the part of it §5 of the design promises (eq, ne, in, startswith, and, or, not, any() over the
provisioning errors and over proxyAddresses) on the properties each collection has, and refuses the
rest with a reason, so a query is answered exactly or not at all. No SQL here: `graph_filter`
translates the checked tree. Its SQLAlchemy visitor is not used: it cannot express any() over our
rows and JSON arrays, nor Graph's case-insensitive string comparison.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

MAX_FILTER_LENGTH = 4096
MAX_DEPTH = 40  # nested and/or/not/any: far above any real script, and a bound on the recursion below
MAX_IN_VALUES = 100
MAX_VALUE_LENGTH = 1123  # the longest value the store holds (a proxy address)


class Collection(StrEnum):
    USERS = "users"
    GROUPS = "groups"
    CONTACTS = "contacts"


class UnsupportedQuery(ValueError):
    """A `$filter` that is not OData (`bad_request`) or that this service cannot answer exactly."""

    def __init__(self, message: str, *, bad_request: bool = False) -> None:
        super().__init__(message)
        self.bad_request = bad_request


StringOperator = Literal["eq", "ne", "in", "startswith"]

# Graph's property names per collection, mapped to what the translation knows them by.
STRING_PROPERTIES: dict[Collection, tuple[str, ...]] = {
    Collection.USERS: ("id", "displayName", "userPrincipalName", "mail", "mailNickname", "onPremisesImmutableId"),
    Collection.GROUPS: ("id", "displayName", "mail", "mailNickname"),
    Collection.CONTACTS: ("id", "displayName", "mail", "mailNickname"),
}
ERROR_PROPERTIES = ("category", "propertyCausingError", "value")
PROXY_ADDRESSES = "proxyAddresses"
PROVISIONING_ERRORS = "onPremisesProvisioningErrors"
SYNC_ENABLED = "onPremisesSyncEnabled"  # every object here comes from on-premises sync: always true


@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op value(s)`; `field` is a property of the object, of an error entry, or "" for a proxy address."""

    field: str
    operator: StringOperator
    values: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Constant:
    value: bool


@dataclass(frozen=True, slots=True)
class Junction:
    operator: Literal["and", "or"]
    left: Condition
    right: Condition


@dataclass(frozen=True, slots=True)
class Negation:
    operand: Condition


@dataclass(frozen=True, slots=True)
class AnyElement:
    """`collection/any(x: condition)`; no condition means "has at least one"."""

    collection: Literal["proxyAddresses", "onPremisesProvisioningErrors"]
    condition: Condition | None


Condition = Comparison | Constant | Junction | Negation | AnyElement


def parse_filter(text: str, collection: Collection) -> Condition:
    """The checked tree of `text` for `collection`; `UnsupportedQuery` says what is wrong with it."""
    if len(text) > MAX_FILTER_LENGTH:
        raise UnsupportedQuery(f"$filter is {len(text)} characters long, the limit is {MAX_FILTER_LENGTH}")
    if "\x00" in text:
        raise UnsupportedQuery("$filter holds a NUL character", bad_request=True)
    if not text.strip():
        raise UnsupportedQuery("$filter is empty", bad_request=True)
    try:
        tree = ODataParser().parse(_standard_tokens(ODataLexer().tokenize(text)))
    except ODataException as exc:
        raise UnsupportedQuery(f"$filter is not a valid OData expression: {_reason(exc)}", bad_request=True) from None
    except RecursionError:
        raise UnsupportedQuery(f"$filter is nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    return _Checker(collection).condition(tree, 0)


def _reason(exc: ODataException) -> str:
    token = getattr(exc, "token", None)
    if token is not None and hasattr(token, "index"):
        return f"unexpected {str(token.value)!r} at position {token.index + 1}"
    if getattr(exc, "eof", False):
        return "it ends too soon"
    return str(exc)


def _standard_tokens(tokens: Iterator[Any]) -> Iterator[Any]:
    """Two spellings Graph and the OData ABNF accept that odata-query 0.10 does not: `not(...)`
    (it wants a space after `not`) and a one-item list `in ('a')` (it wants `('a',)`)."""
    pending = list(tokens)
    after_in: list[int] = []  # for each `in (` still open: its depth and whether a comma was seen
    depth = 0
    commas: dict[int, bool] = {}
    for index, token in enumerate(pending):
        following = pending[index + 1] if index + 1 < len(pending) else None
        if (
            token.type == "ODATA_IDENTIFIER"
            and isinstance(token.value, ast.Identifier)
            and _name(token.value).lower() == "not"
            and following is not None
            and following.type == "("
        ):
            token.type, token.value = "NOT", ast.Not()
        if token.type == "(":
            depth += 1
            if index > 0 and pending[index - 1].type == "IN":
                after_in.append(depth)
                commas[depth] = False
        elif token.type == "," and after_in and after_in[-1] == depth:
            commas[depth] = True
        elif token.type == ")":
            if after_in and after_in[-1] == depth:
                after_in.pop()
                if not commas.pop(depth):
                    comma = copy.copy(token)  # a sly Token; sly itself ships no type information
                    comma.type, comma.value = ",", ","
                    yield comma
            depth -= 1
        yield token


class _Checker:
    """Walks odata-query's AST, keeping what it can answer exactly and naming what it cannot."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.properties = {name.lower(): name for name in STRING_PROPERTIES[collection]}

    def condition(self, node: Any, depth: int, variable: str | None = None, over: str | None = None) -> Condition:
        if depth > MAX_DEPTH:
            raise UnsupportedQuery(f"$filter is nested too deeply (the limit is {MAX_DEPTH} levels)")
        if isinstance(node, ast.BoolOp):
            operator: Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
            return Junction(
                operator,
                self.condition(node.left, depth + 1, variable, over),
                self.condition(node.right, depth + 1, variable, over),
            )
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Negation(self.condition(node.operand, depth + 1, variable, over))
        if isinstance(node, ast.Compare):
            return self.comparison(node, variable, over)
        if isinstance(node, ast.Call):
            return self.call(node, variable, over)
        if isinstance(node, ast.CollectionLambda):
            if variable is not None:
                raise UnsupportedQuery("any() inside any() is not supported")
            return self.lambda_(node, depth)
        if isinstance(node, ast.Boolean):
            return Constant(node.py_val)
        raise UnsupportedQuery(f"{_describe(node)} is not a condition this service can filter on")

    def lambda_(self, node: ast.CollectionLambda, depth: int) -> AnyElement:
        owner = self.name_of(node.owner)
        if owner == PROXY_ADDRESSES.lower():
            collection: Literal["proxyAddresses", "onPremisesProvisioningErrors"] = "proxyAddresses"
        elif owner == PROVISIONING_ERRORS.lower():
            collection = "onPremisesProvisioningErrors"
        else:
            raise UnsupportedQuery(
                f"any() works over {PROXY_ADDRESSES} and {PROVISIONING_ERRORS}, not {_describe(node.owner)}"
            )
        if not isinstance(node.operator, ast.Any):
            raise UnsupportedQuery("only any() is supported over collections, not all()")
        if node.lambda_ is None:
            return AnyElement(collection, None)
        variable = node.lambda_.identifier.name
        return AnyElement(collection, self.condition(node.lambda_.expression, depth + 1, variable, collection))

    def comparison(self, node: ast.Compare, variable: str | None, over: str | None) -> Condition:
        if isinstance(node.comparator, ast.Eq | ast.NotEq | ast.In):
            operator: StringOperator = (
                "eq"
                if isinstance(node.comparator, ast.Eq)
                else "ne"
                if isinstance(node.comparator, ast.NotEq)
                else "in"
            )
        else:
            raise UnsupportedQuery(f"the operator {_describe(node.comparator)} is not supported; use eq, ne or in")
        field = self.field(node.left, variable, over)
        if field == SYNC_ENABLED:
            return self.sync_enabled(operator, node.right)
        if operator == "in":
            if not isinstance(node.right, ast.List):
                raise UnsupportedQuery("in needs a list of values: in ('a', 'b')", bad_request=True)
            if len(node.right.val) > MAX_IN_VALUES:
                raise UnsupportedQuery(f"in lists {len(node.right.val)} values, the limit is {MAX_IN_VALUES}")
            values = tuple(self.value(item, field) for item in node.right.val)
        else:
            values = (self.value(node.right, field),)
        return Comparison(field, operator, values)

    def call(self, node: ast.Call, variable: str | None, over: str | None) -> Comparison:
        name = _name(node.func).lower()
        if name != "startswith":
            raise UnsupportedQuery(f"the function {_name(node.func)}() is not supported; startswith() is")
        subject, prefix = node.args
        field = self.field(subject, variable, over)
        if field == SYNC_ENABLED:
            raise UnsupportedQuery(f"startswith() works on text, and {SYNC_ENABLED} is a boolean")
        value = self.value(prefix, field)
        if value is None:
            raise UnsupportedQuery("startswith() needs a text prefix, not null", bad_request=True)
        return Comparison(field, "startswith", (value,))

    def sync_enabled(self, operator: StringOperator, right: Any) -> Constant:
        if operator == "in" or not isinstance(right, ast.Boolean | ast.Null):
            raise UnsupportedQuery(f"{SYNC_ENABLED} compares with eq or ne to true, false or null")
        matches = isinstance(right, ast.Boolean) and right.py_val is True
        return Constant(matches if operator == "eq" else not matches)

    def field(self, node: Any, variable: str | None, over: str | None) -> str:
        """The canonical name of what is compared: an object property, an error property, or ""."""
        if variable is not None and isinstance(node, ast.Identifier) and node.name == variable and not node.namespace:
            if over != PROXY_ADDRESSES:
                raise UnsupportedQuery(
                    f"compare a property of {variable}, e.g. {variable}/category eq 'PropertyConflict'"
                )
            return ""
        if variable is not None and isinstance(node, ast.Attribute):
            if not (isinstance(node.owner, ast.Identifier) and node.owner.name == variable):
                raise UnsupportedQuery(f"{_describe(node)} is not a property of {variable}")
            if over != PROVISIONING_ERRORS:
                raise UnsupportedQuery(f"a proxy address has no properties; compare {variable} itself")
            for name in ERROR_PROPERTIES:
                if name.lower() == node.attr.lower():
                    return name
            raise UnsupportedQuery(
                f"{PROVISIONING_ERRORS} entries can be filtered on {', '.join(ERROR_PROPERTIES)}, not {node.attr}"
            )
        name = self.name_of(node)
        if name == SYNC_ENABLED.lower():
            return SYNC_ENABLED
        if name in self.properties:
            return self.properties[name]
        if variable is not None:
            raise UnsupportedQuery(f"inside any() compare {variable} or its properties, not {_describe(node)}")
        known = ", ".join((*STRING_PROPERTIES[self.collection], SYNC_ENABLED))
        raise UnsupportedQuery(f"{self.collection.value} cannot be filtered on {_describe(node)}; it can on {known}")

    def name_of(self, node: Any) -> str:
        if isinstance(node, ast.Identifier) and not node.namespace:
            return node.name.lower()
        if isinstance(node, ast.Identifier | ast.Attribute):
            return _describe(node).lower()
        raise UnsupportedQuery(f"{_describe(node)} is compared where a property name belongs")

    def value(self, node: Any, field: str) -> str | None:
        if isinstance(node, ast.Null):
            return None
        if isinstance(node, ast.String):
            text = node.py_val
        elif isinstance(node, ast.GUID) and field == "id":
            text = node.val
        else:
            raise UnsupportedQuery(f"{field or 'a proxy address'} compares with text in quotes, not {_describe(node)}")
        if len(text) > MAX_VALUE_LENGTH:
            raise UnsupportedQuery(
                f"a value in $filter is {len(text)} characters long, the limit is {MAX_VALUE_LENGTH}"
            )
        return text


def _name(identifier: ast.Identifier) -> str:
    return ".".join((*identifier.namespace, identifier.name))


def _describe(node: Any) -> str:
    if isinstance(node, ast.Identifier):
        return _name(node)
    if isinstance(node, ast.Attribute):
        return f"{_describe(node.owner)}/{node.attr}"
    if isinstance(node, ast.String):
        return repr(node.py_val)
    if isinstance(node, ast._Literal) and hasattr(node, "val"):
        return str(node.val)
    return type(node).__name__.lower()
