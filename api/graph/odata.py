"""The OData system query options of a Graph collection request, checked and turned into a `GraphQuery`.

A `$` option this face does not know is refused rather than ignored: `$skip` or `$expand` silently
dropped would give an answer to another question. The `$skiptoken` of `@odata.nextLink` is opaque
(base64url JSON of the last object's position) and bound to the order it came from.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from fastapi import Request

from api.graph.errors import UNSUPPORTED_QUERY, GraphError
from api.graph.serialise import selectable
from shared.queries.graph_ast import Collection, UnsupportedQuery, parse_filter
from shared.queries.graph_directory import GraphQuery, OrderField, Position

MAX_TOP = 999
DEFAULT_TOP = 100
MAX_OPTION = 4096
MAX_TOKEN = 2048
KNOWN_OPTIONS = {"$filter", "$select", "$top", "$orderby", "$count", "$search", "$skiptoken"}
_ORDERABLE: dict[str, OrderField] = {"displayname": "displayName", "userprincipalname": "userPrincipalName"}
_SEARCH = re.compile(r'^"(?P<property>[A-Za-z]+):(?P<term>[^"]*)"$')
_MAX_ROW_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CollectionRequest:
    query: GraphQuery
    select: tuple[str, ...] | None  # None: every property
    count: bool


def collection_request(request: Request, collection: Collection) -> CollectionRequest:
    """Every query option of `request`, checked; a `GraphError` (400) names the first one that is wrong."""
    options = _options(request)
    select = parse_select(options.get("$select"), collection)
    order_by, descending = _order(options.get("$orderby"), collection)
    top = _top(options.get("$top"))
    condition = None
    if "$filter" in options:
        try:
            condition = parse_filter(options["$filter"], collection)
        except UnsupportedQuery as exc:
            raise GraphError(400, str(exc), "Request_BadRequest" if exc.bad_request else UNSUPPORTED_QUERY) from None
    after = decode_skiptoken(options["$skiptoken"], order_by, descending) if "$skiptoken" in options else None
    query = GraphQuery(
        collection=collection,
        condition=condition,
        search=_search(options.get("$search")),
        order_by=order_by,
        descending=descending,
        top=top,
        after=after,
        with_errors=select is None or "onPremisesProvisioningErrors" in select,
    )
    return CollectionRequest(query, select, _count(options.get("$count")))


def item_select(request: Request, collection: Collection) -> tuple[str, ...] | None:
    """An item answers `$select` only."""
    options = _options(request)
    extra = sorted(set(options) - {"$select"})
    if extra:
        raise GraphError(400, f"{extra[0]} is not supported when reading one object; use $select", UNSUPPORTED_QUERY)
    return parse_select(options.get("$select"), collection)


def _options(request: Request) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if not name.startswith("$"):
            continue  # Graph ignores parameters that are not query options
        option = name.lower()
        if option not in KNOWN_OPTIONS:
            raise GraphError(400, f"the query option {name} is not supported by this service", UNSUPPORTED_QUERY)
        if option in found:
            raise GraphError(400, f"the query option {name} is given twice")
        if len(value) > MAX_OPTION:
            raise GraphError(400, f"{name} is {len(value)} characters long, the limit is {MAX_OPTION}")
        found[option] = value
    return found


def parse_select(value: str | None, collection: Collection) -> tuple[str, ...] | None:
    if value is None:
        return None
    known = {name.lower(): name for name in selectable(collection)}
    chosen: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        if name.lower() not in known:
            raise GraphError(
                400,
                f"Could not find a property named {name!r} on {collection.value}; "
                f"$select takes a comma-separated list of {', '.join(selectable(collection))}",
            )
        if known[name.lower()] not in chosen:
            chosen.append(known[name.lower()])
    return tuple(chosen)


def _order(value: str | None, collection: Collection) -> tuple[OrderField | None, bool]:
    if value is None:
        return None, False
    if "," in value:
        raise GraphError(400, "$orderby takes one property; sorting by several is not supported", UNSUPPORTED_QUERY)
    parts = value.split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise GraphError(400, f"$orderby {value!r} is not 'property' or 'property asc|desc'")
    field = _ORDERABLE.get(parts[0].lower())
    if field is None or (field == "userPrincipalName" and collection is not Collection.USERS):
        names = "displayName or userPrincipalName" if collection is Collection.USERS else "displayName"
        raise GraphError(400, f"{collection.value} can be ordered by {names}, not {parts[0]}", UNSUPPORTED_QUERY)
    return field, len(parts) == 2 and parts[1].lower() == "desc"


def _top(value: str | None) -> int:
    if value is None:
        return DEFAULT_TOP
    if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= MAX_TOP:
        raise GraphError(400, f"Invalid page size specified: $top must be a whole number from 1 to {MAX_TOP}")
    return int(value)


def _count(value: str | None) -> bool:
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise GraphError(400, f"$count is true or false, not {value!r}")


def _search(value: str | None) -> str | None:
    if value is None:
        return None
    match = _SEARCH.match(value.strip())
    if match is None:
        raise GraphError(400, '$search takes "displayName:term", in double quotes', UNSUPPORTED_QUERY)
    if match["property"].lower() != "displayname":
        raise GraphError(400, f"$search works on displayName, not {match['property']}", UNSUPPORTED_QUERY)
    term = match["term"]
    if not term.strip() or "\x00" in term:
        raise GraphError(400, "$search needs a term after displayName:")
    return term


def encode_skiptoken(order_by: OrderField | None, descending: bool, position: Position) -> str:
    payload = {"o": order_by or "", "d": descending, "k": position.sort_key, "p": position.pk}
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate (one in a made-up token was a 500)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def decode_skiptoken(token: str, order_by: OrderField | None, descending: bool) -> Position:
    unusable = GraphError(400, "$skiptoken is not one this service made; follow @odata.nextLink as given")
    if len(token) > MAX_TOKEN:
        raise unusable
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # json.loads: too deep is RecursionError
        raise unusable from None
    if not isinstance(payload, dict) or set(payload) != {"o", "d", "k", "p"}:
        raise unusable
    if payload["o"] != (order_by or "") or payload["d"] is not descending:
        raise GraphError(400, "$skiptoken belongs to another $orderby; start again without it")
    pk, key = payload["p"], payload["k"]
    if type(pk) is not int or not 0 <= pk <= _MAX_ROW_ID:
        raise unusable
    if key is not None and (not isinstance(key, str) or len(key) > MAX_OPTION or not _storable(key)):
        raise unusable
    if order_by is None and key is not None:
        raise unusable
    return Position(key, pk)
