"""A checked Graph `$filter` tree (`graph_ast`) as one SQL condition on `directory_objects`.

Everything runs in the database: any() over the errors is an EXISTS on `provisioning_errors`,
any() over proxyAddresses a containment test a GIN index answers (eq, in) or an EXISTS over the
array's elements (startswith, ne). Strings compare lower-cased on both sides, by PostgreSQL's
lower(), as Graph compares them case-insensitively. Every comparison is two-valued (a missing
value never makes `not` keep a row it should drop), so `not` means what OData says.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FunctionElement

from shared.queries.graph_ast import (
    AnyElement,
    Comparison,
    Condition,
    Constant,
    Junction,
    Negation,
    UnsupportedQuery,
)
from shared.queries.options import ERROR_CATEGORIES
from shared.store.tables import DirectoryObject, ProvisioningError

ERROR_ENTRY = ProvisioningError.__table__.alias("graph_error")  # the entry an any() lambda ranges over

# Graph's spelling of `propertyCausingError` for what the store calls each property.
GRAPH_PROPERTY_NAMES = {"UserPrincipalName": "UserPrincipalName", "ProxyAddresses": "ProxyAddress"}


class folded_proxy_addresses(FunctionElement[Any]):
    """The proxy addresses lower-cased as one JSONB array: the expression of their GIN index."""

    inherit_cache = True


@compiles(folded_proxy_addresses, "postgresql")
def _folded_proxies(element: folded_proxy_addresses, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(lower(({compiler.process(element.clauses, **kw)})::text)::jsonb)"


def object_column(field: str) -> Any:
    """The column (or JSON member) behind a Graph property of an object."""
    columns: dict[str, Any] = {
        "id": DirectoryObject.object_id,
        "displayName": DirectoryObject.display_name,
        "userPrincipalName": DirectoryObject.upn,
        "mail": DirectoryObject.attributes["mail"].as_string(),
        "mailNickname": DirectoryObject.attributes["mailNickname"].as_string(),
        "onPremisesImmutableId": DirectoryObject.source_anchor,
    }
    return columns[field]


def like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def filter_condition(condition: Condition, dialect: str) -> ColumnElement[bool]:
    """The WHERE condition on `DirectoryObject` for a checked `$filter`."""
    return _Translator(dialect).condition(condition)


def entry_condition(node: AnyElement, dialect: str) -> ColumnElement[bool]:
    """The condition of an any() over the errors on one entry (`ERROR_ENTRY`), without its object."""
    return true() if node.condition is None else _Translator(dialect).condition(node.condition)


class _Translator:
    def __init__(self, dialect: str) -> None:
        self.postgresql = dialect == "postgresql"

    def condition(self, node: Condition, element: Any = None) -> ColumnElement[bool]:
        if isinstance(node, Junction):
            parts = (self.condition(node.left, element), self.condition(node.right, element))
            return and_(*parts) if node.operator == "and" else or_(*parts)
        if isinstance(node, Negation):
            return not_(self.condition(node.operand, element))
        if isinstance(node, Constant):
            return true() if node.value else false()
        if isinstance(node, AnyElement):
            return self.any_element(node)
        return self.comparison(node, element)

    def comparison(self, node: Comparison, element: Any) -> ColumnElement[bool]:
        if node.field == "":
            return self.text_comparison(element, node, nullable=False)
        if node.field == "propertyCausingError":
            return self.closed_set(ERROR_ENTRY.c.property_name, node, GRAPH_PROPERTY_NAMES)
        if node.field == "category":
            return self.closed_set(ERROR_ENTRY.c.category, node, {c: c for c in ERROR_CATEGORIES})
        if node.field == "value":
            return self.text_comparison(ERROR_ENTRY.c.property_value, node, nullable=False)
        if node.field == "id":
            # Object ids are lower-case UUIDs, so the unique index answers without lower().
            return self.exact(DirectoryObject.object_id, node, [v.lower() if v else v for v in node.values])
        column = object_column(node.field)
        return self.text_comparison(column, node, nullable=node.field != "onPremisesImmutableId")

    def text_comparison(self, column: Any, node: Comparison, nullable: bool) -> ColumnElement[bool]:
        """Case-insensitive and two-valued: a NULL column neither equals nor starts with anything."""
        texts = [v for v in node.values if v is not None]
        asks_null = len(texts) < len(node.values)
        key = func.lower(column)
        if node.operator == "startswith":
            matched: ColumnElement[bool] = key.like(func.lower(literal(like_prefix(texts[0]))), escape="\\")
        elif texts:
            wanted = [func.lower(literal(text)) for text in texts]
            matched = key == wanted[0] if len(wanted) == 1 else key.in_(wanted)
        else:
            matched = false()
        if nullable:
            matched = and_(column.is_not(None), matched)
            if asks_null:
                matched = or_(column.is_(None), matched)
        elif asks_null and not texts:
            matched = false()
        return not_(matched) if node.operator == "ne" else matched

    def exact(self, column: Any, node: Comparison, values: list[str | None]) -> ColumnElement[bool]:
        texts = [v for v in values if v is not None]
        if node.operator == "startswith":
            matched: ColumnElement[bool] = column.like(like_prefix(texts[0]), escape="\\")
        else:
            matched = column.in_(texts) if len(texts) != 1 else column == texts[0]
        return not_(matched) if node.operator == "ne" else matched

    def closed_set(self, column: Any, node: Comparison, spellings: dict[str, str]) -> ColumnElement[bool]:
        """A column with a few known values (stored name -> Graph's spelling): the literals are matched
        here, case-insensitively, and the column compared exactly, so PostgreSQL's statistics apply."""

        def matches(graph: str, value: str) -> bool:
            return (
                graph.lower().startswith(value.lower())
                if node.operator == "startswith"
                else graph.lower() == value.lower()
            )

        stored = [
            name for name, graph in spellings.items() if any(v is not None and matches(graph, v) for v in node.values)
        ]
        matched: ColumnElement[bool] = column.in_(stored) if stored else false()
        return not_(matched) if node.operator == "ne" else matched

    def any_element(self, node: AnyElement) -> ColumnElement[bool]:
        if node.collection == "onPremisesProvisioningErrors":
            inner = [
                ERROR_ENTRY.c.object_pk == DirectoryObject.id,
                ERROR_ENTRY.c.tenant_id == DirectoryObject.tenant_id,
            ]
            if node.condition is not None:
                inner.append(self.condition(node.condition))
            return exists(select(literal(1)).select_from(ERROR_ENTRY).where(*inner))
        if not self.postgresql:
            raise UnsupportedQuery("proxyAddresses/any() is answered on PostgreSQL only, not on this database")
        values = _listed_values(node.condition)
        if values is not None:
            held = folded_proxy_addresses(DirectoryObject.proxy_addresses)
            tests = [held.op("@>")(func.jsonb_build_array(func.lower(literal(v)))) for v in values]
            return or_(*tests) if tests else false()
        addresses = func.jsonb_array_elements_text(DirectoryObject.proxy_addresses).table_valued("value").alias("x")
        if node.condition is None:
            return func.jsonb_array_length(DirectoryObject.proxy_addresses) > 0
        return exists(
            select(literal(1)).select_from(addresses).where(self.condition(node.condition, addresses.c.value))
        )


def _listed_values(condition: Condition | None) -> list[str] | None:
    """The addresses of `x eq 'a' or x in ('b', 'c')`: a test the GIN index answers. None otherwise."""
    if isinstance(condition, Comparison) and condition.operator in ("eq", "in"):
        return [v for v in condition.values if v is not None]
    if isinstance(condition, Junction) and condition.operator == "or":
        left, right = _listed_values(condition.left), _listed_values(condition.right)
        if left is not None and right is not None:
            return left + right
    return None
