"""The skipToken: it round-trips a keyset position and refuses anything it did not make."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from api.paging import BadSkipToken, Cursor, decode, encode
from shared.queries.conflict_pages import PagePosition
from shared.queries.options import SortDirection, SortField

ASC, DESC = SortDirection.ASCENDING, SortDirection.DESCENDING


@pytest.mark.parametrize(
    ("field", "cursor"),
    [
        (SortField.DISPLAY_NAME, Cursor(PagePosition("Zoë <b>", 7))),
        (SortField.DISPLAY_NAME, Cursor(PagePosition(None, 7), backward=True)),
        (SortField.USER_PRINCIPAL_NAME, Cursor(PagePosition("a@b.c", 2**63 - 1))),
        (SortField.NONE, Cursor(PagePosition(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 1))),
    ],
)
def test_a_token_round_trips(field: SortField, cursor: Cursor) -> None:
    token = encode(field, DESC, cursor)
    assert token.isascii() and "=" not in token
    assert decode(token, field, DESC) == cursor


def forge(**payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize(
    "token",
    [
        "%%%",
        "bm90IGpzb24",  # "not json"
        forge(s="None", d="Ascending", v="2026-01-01T00:00:00Z", p=-1),
        forge(s="None", d="Ascending", v="2026-01-01T00:00:00Z", p=2**63),
        forge(s="None", d="Ascending", v="2026-01-01T00:00:00Z", p="1"),
        forge(s="None", d="Ascending", v="yesterday", p=1),
        forge(s="None", d="Ascending", v=None, p=1),
        forge(s="None", d="Ascending", v="2026-01-01T00:00:00Z", p=1, b="yes"),
        forge(s="None", d="Ascending", v="2026-01-01T00:00:00Z", p=1, extra=1),
        forge(s="DisplayName", d="Ascending", v="a", p=1),  # another sort field
        forge(s="None", d="Descending", v="2026-01-01T00:00:00Z", p=1),  # another direction
        "A" * 3000,
    ],
)
def test_anything_else_is_refused(token: str) -> None:
    with pytest.raises(BadSkipToken):
        decode(token, SortField.NONE, ASC)


def test_a_name_with_a_nul_is_refused_before_it_reaches_the_database() -> None:
    with pytest.raises(BadSkipToken):
        decode(forge(s="DisplayName", d="Ascending", v="a\x00b", p=1), SortField.DISPLAY_NAME, ASC)
