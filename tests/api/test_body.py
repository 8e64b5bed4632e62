"""Splitting a posted body into exports: JSON arrays item by item across read boundaries, and JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import pytest

from api import body as body_module
from api.body import BodyTooLarge, MalformedBody, array_items, is_json_array, spool, text_of

ITEMS = [{"n": 1, "s": "a,b]"}, [1, 2], 12345, 'text with \\ and " and ]', None, {"deep": {"x": [1, {"y": "}"}]}}]


def split(text: str, chunk: int) -> list[object]:
    """Items as the splitter yields them, read `chunk` characters at a time."""

    class Trickle(io.StringIO):
        def read(self, size: int | None = -1) -> str:
            return super().read(chunk)

    return [json.loads(item) for item in array_items(Trickle(text))]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 100_000])
def test_every_item_comes_out_whole_whatever_the_read_size(chunk: int) -> None:
    text = json.dumps(ITEMS, indent=2)
    assert split(text, chunk) == ITEMS


def test_a_number_cut_by_a_read_boundary_is_not_split() -> None:
    assert split("[12345, 678]", 3) == [12345, 678]


@pytest.mark.parametrize("text", ["[]", "  [ ]  ", "\n[\n]\n"])
def test_an_empty_array_has_no_items(text: str) -> None:
    assert split(text, 2) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[{"a": 1}, {"b": ', "item 2 of the JSON array is not valid JSON"),
        ('[{"a": 1} {"b": 2}]', "expected ',' or ']' after item 1"),
        ('[{"a": 1},]', "item 2 of the JSON array is not valid JSON"),
        ('[{"a": 1}] trailing', "more after the end of the JSON array"),
        ('{"a": 1}', "not a JSON array"),
        ("[", "item 1 of the JSON array is not valid JSON"),
    ],
)
def test_a_malformed_array_says_where(text: str, reason: str) -> None:
    with pytest.raises(MalformedBody, match=reason.replace("[", r"\[").replace("]", r"\]")):
        split(text, 4)


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_spool_keeps_a_body_within_the_limit_and_rewinds() -> None:
    spooled = asyncio.run(spool(_chunks(b"ab", b"cd"), limit=4))
    assert spooled.read() == b"abcd"


def test_spool_stops_as_soon_as_the_body_passes_the_limit() -> None:
    read: list[bytes] = []

    async def counted() -> AsyncIterator[bytes]:
        for part in (b"abc", b"def", b"never read"):
            read.append(part)
            yield part

    with pytest.raises(BodyTooLarge, match="larger than 5 bytes"):
        asyncio.run(spool(counted(), limit=5))
    assert read == [b"abc", b"def"]


def test_a_large_body_is_spooled_to_disk_not_kept_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(body_module, "SPOOL_IN_MEMORY", 10)
    spooled = asyncio.run(spool(_chunks(b"x" * 100), limit=1000))
    assert spooled._rolled  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "array"), [(b"  \n[1]", True), (b'\xef\xbb\xbf[{"a":1}]', True), (b'{"a": 1}\n', False), (b"", False)]
)
def test_a_body_is_an_array_when_it_starts_with_a_bracket(raw: bytes, array: bool) -> None:
    source = io.BytesIO(raw)
    assert is_json_array(source) is array
    assert source.tell() == 0


def test_invalid_utf8_is_replaced_so_the_line_is_rejected_with_its_text() -> None:
    text = text_of(io.BytesIO(b'{"a": "\xff"}\n'))
    assert text.read() == '{"a": "\ufffd"}\n'
