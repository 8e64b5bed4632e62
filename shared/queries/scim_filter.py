"""A SCIM filter (RFC 7644 §3.4.2.2), parsed by scim2-models into its AST, as a SQL condition.

scim2-models' grammar parses and checks the syntax; this module only translates the tree, over the
real columns, so every filter runs in the database. String comparisons are case-insensitive (the
attributes filtered here are `caseExact: false` in the core schemas) except `externalId` and `id`,
which are case-exact. An attribute or operator this face cannot answer raises `UnsupportedFilter`
(the face answers 400 `invalidFilter`), never a silently wrong answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scim2_models import SCIMException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterNode,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)
from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB

from shared.store.tables import DirectoryObject

DIRECTORY_URN = "urn:syncguard:scim:schemas:extension:directory:2.0"
MAX_FILTER = 2048


class UnsupportedFilter(ValueError):
    """A filter that is not SCIM, or asks for what this face cannot answer; the message says which."""


# Single-valued attributes and the column each is: (column, case-exact).
_SCALARS: dict[str, tuple[Any, bool]] = {
    "username": (DirectoryObject.upn, False),
    "displayname": (DirectoryObject.display_name, False),
    "externalid": (DirectoryObject.source_anchor, True),
    "id": (DirectoryObject.object_id, True),
}
_ORDERING = {CompareOperator.gt, CompareOperator.ge, CompareOperator.lt, CompareOperator.le}


def parse_filter(text: str) -> FilterNode:
    if len(text) > MAX_FILTER:
        raise UnsupportedFilter(f"the filter is {len(text)} characters long, the limit is {MAX_FILTER}")
    try:
        return ScimFilter(text).ast
    except (SCIMException, ValueError, RecursionError) as exc:
        raise UnsupportedFilter(f"the filter {text[:200]!r} is not a SCIM filter: {exc}") from None


def filter_condition(text: str) -> ColumnElement[bool]:
    """The SQL condition for a SCIM filter over `directory_objects`."""
    return _node(parse_filter(text))


def _name(path: AttrPath) -> str:
    uri = (path.uri or "").lower()
    if (
        uri
        and uri not in (DIRECTORY_URN, "urn:ietf:params:scim:schemas:core:2.0:user")
        and not uri.startswith(("urn:ietf:params:scim:schemas:core:2.0:", "urn:syncguard:scim:schemas:contact"))
    ):
        raise UnsupportedFilter(f"the filter names the schema {path.uri!r}, which this service does not serve")
    name = path.attr.lower()
    return f"{name}.{path.sub_attr.lower()}" if path.sub_attr else name


def _node(node: FilterNode) -> ColumnElement[bool]:
    if isinstance(node, LogicalExpr):
        parts = [_node(term) for term in node.terms]
        return and_(*parts) if node.op is LogicalOperator.and_ else or_(*parts)
    if isinstance(node, Not):
        return not_(_node(node.expr))
    if isinstance(node, Present):
        return _present(node.attr_path)
    if isinstance(node, Comparison):
        return _comparison(node.attr_path, node.op, node.value)
    if isinstance(node, ValuePath):
        return _value_path(node)
    raise UnsupportedFilter(f"this face cannot answer the filter expression {node!r}")


def _text_compare(column: Any, op: CompareOperator, value: Any, case_exact: bool) -> ColumnElement[bool]:
    if not isinstance(value, str):
        if value is None and op in (CompareOperator.eq, CompareOperator.ne):
            absent: ColumnElement[bool] = column.is_(None) if op is CompareOperator.eq else column.is_not(None)
            return absent
        raise UnsupportedFilter(f"{op.value} compares a string attribute with a string, not {value!r}")
    left = column if case_exact else func.lower(column)
    right = value if case_exact else value.lower()
    if op is CompareOperator.eq:
        return left == right
    if op is CompareOperator.ne:
        return or_(left != right, column.is_(None))
    if op is CompareOperator.co:
        return left.contains(right, autoescape=True)
    if op is CompareOperator.sw:
        return left.startswith(right, autoescape=True)
    if op is CompareOperator.ew:
        return left.endswith(right, autoescape=True)
    if op is CompareOperator.gt:
        return left > right
    if op is CompareOperator.ge:
        return left >= right
    if op is CompareOperator.lt:
        return left < right
    return left <= right


def _emails() -> Any:
    """The stored SCIM emails of the object, one row each (`[]` when it has none)."""
    stored = type_coerce(DirectoryObject.attributes, JSONB)["scim"]["emails"]
    listed = func.coalesce(func.nullif(func.jsonb_typeof(stored), "null"), "") == "array"
    safe = case((listed, stored), else_=cast(literal("[]"), JSONB))
    return func.jsonb_array_elements(safe).table_valued(column("value", JSONB)).alias("email")


def _proxies() -> Any:
    return func.jsonb_array_elements_text(DirectoryObject.proxy_addresses).table_valued("value").alias("proxy")


def _comparison(path: AttrPath, op: CompareOperator, value: Any) -> ColumnElement[bool]:
    name = _name(path)
    if name in _SCALARS:
        column, case_exact = _SCALARS[name]
        return _text_compare(column, op, value, case_exact)
    if name in ("emails", "emails.value"):
        email = _emails()
        return exists(
            select(1).select_from(email).where(_text_compare(email.c.value["value"].astext, op, value, False))
        )
    if name == "proxyaddresses":
        proxy = _proxies()
        return exists(select(1).select_from(proxy).where(_text_compare(proxy.c.value, op, value, False)))
    if name == "active":
        if not isinstance(value, bool) or op not in (CompareOperator.eq, CompareOperator.ne):
            raise UnsupportedFilter("active is compared with eq or ne and true or false")
        stored = func.coalesce(type_coerce(DirectoryObject.attributes, JSONB)["active"].as_boolean(), true())
        return stored == value if op is CompareOperator.eq else stored != value
    if name == "meta.lastmodified":
        if op not in _ORDERING and op not in (CompareOperator.eq, CompareOperator.ne):
            raise UnsupportedFilter("meta.lastModified is compared with eq, ne, gt, ge, lt or le")
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise UnsupportedFilter(f"meta.lastModified is compared with a dateTime, not {value!r}") from None
        column = DirectoryObject.updated_at
        ops = {
            CompareOperator.eq: column == moment,
            CompareOperator.ne: column != moment,
            CompareOperator.gt: column > moment,
            CompareOperator.ge: column >= moment,
            CompareOperator.lt: column < moment,
            CompareOperator.le: column <= moment,
        }
        return ops[op]
    raise UnsupportedFilter(
        f"this face cannot filter on {path.attr}{'.' + path.sub_attr if path.sub_attr else ''}: it filters on "
        "userName, displayName, externalId, id, emails(.value), active, meta.lastModified and proxyAddresses"
    )


def _present(path: AttrPath) -> ColumnElement[bool]:
    name = _name(path)
    if name in _SCALARS:
        column = _SCALARS[name][0]
        return and_(column.is_not(None), column != "")
    if name in ("emails", "emails.value"):
        return exists(select(1).select_from(_emails()))
    if name == "proxyaddresses":
        return exists(select(1).select_from(_proxies()))
    if name in ("active", "meta.lastmodified"):
        return true()
    return false()  # an attribute this face never stores is never present


def _value_path(node: ValuePath) -> ColumnElement[bool]:
    """`emails[type eq "work" and value co "@x"]`: one email that meets the whole inner filter."""
    if _name(node.attr_path) != "emails":
        raise UnsupportedFilter(f"value filters ([...]) are answered on emails only, not on {node.attr_path.attr}")
    email = _emails()
    return exists(select(1).select_from(email).where(_email_node(node.val_filter, email)))


def _email_node(node: FilterNode, email: Any) -> ColumnElement[bool]:
    if isinstance(node, LogicalExpr):
        parts = [_email_node(term, email) for term in node.terms]
        return and_(*parts) if node.op is LogicalOperator.and_ else or_(*parts)
    if isinstance(node, Not):
        return not_(_email_node(node.expr, email))
    if isinstance(node, Present | Comparison):
        sub = node.attr_path.attr.lower()
        if sub not in ("value", "type", "display", "primary"):
            raise UnsupportedFilter(f"an email has no sub-attribute {node.attr_path.attr!r}")
        field = email.c.value[sub].astext
        if isinstance(node, Present):
            present: ColumnElement[bool] = field.is_not(None)
            return present
        if sub == "primary":
            if not isinstance(node.value, bool):
                raise UnsupportedFilter("primary is compared with true or false")
            flag = func.coalesce(email.c.value["primary"].as_boolean(), false())
            return flag == node.value if node.op is CompareOperator.eq else flag != node.value
        return _text_compare(cast(field, String), node.op, node.value, False)
    raise UnsupportedFilter(f"this face cannot answer the value filter {node!r}")
