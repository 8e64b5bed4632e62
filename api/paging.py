"""The opaque `skipToken`: a keyset position, base64url-encoded JSON, bound to the sort it came from.

It is not signed: a caller who edits one only moves their own cursor inside their own tenant. It
is checked as strictly as any other input, so a made-up token is a 400, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.core.timestamps import iso_utc
from shared.queries.conflict_pages import PagePosition
from shared.queries.options import SortDirection, SortField

MAX_TOKEN = 2048
_MAX_SORT_VALUE = 1200
_MAX_ROW_ID = 2**63 - 1


class BadSkipToken(ValueError):
    """The token was not made by this service for this sort order."""


@dataclass(frozen=True, slots=True)
class Cursor:
    position: PagePosition
    backward: bool = False  # the page before `position`, for the report's "previous" link


def encode(sort_field: SortField, direction: SortDirection, cursor: Cursor) -> str:
    value = cursor.position.sort_value
    payload = {
        "s": sort_field.value,
        "d": direction.value,
        "v": iso_utc(value) if isinstance(value, datetime) else value,
        "p": cursor.position.object_pk,
    }
    if cursor.backward:
        payload["b"] = True
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, sort_field: SortField, direction: SortDirection) -> Cursor:
    if len(token) > MAX_TOKEN:
        raise BadSkipToken("skipToken is too long to be one this service made")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # json.loads: too deep is RecursionError
        raise BadSkipToken("skipToken is not one this service made; use the link of the previous page") from None
    if not isinstance(payload, dict) or set(payload) - {"s", "d", "v", "p", "b"}:
        raise BadSkipToken("skipToken is not one this service made; use the link of the previous page")
    if payload.get("s") != sort_field.value or payload.get("d") != direction.value:
        raise BadSkipToken("skipToken belongs to another sort order; start again without it")
    row_id, value, backward = payload.get("p"), payload.get("v"), payload.get("b", False)
    if type(row_id) is not int or not 0 <= row_id <= _MAX_ROW_ID or type(backward) is not bool:
        raise BadSkipToken("skipToken is damaged; start again without it")
    if sort_field is SortField.NONE:
        return Cursor(PagePosition(_moment(value), row_id), backward)
    if value is not None and (not isinstance(value, str) or len(value) > _MAX_SORT_VALUE or not _storable(value)):
        raise BadSkipToken("skipToken is damaged; start again without it")
    return Cursor(PagePosition(value, row_id), backward)


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate (one in a made-up token was a 500)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _moment(value: object) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise BadSkipToken("skipToken is damaged; start again without it")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadSkipToken("skipToken is damaged; start again without it") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
