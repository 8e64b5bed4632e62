"""Read a posted body as a stream, under a size limit, and split it into export texts.

The body is spooled (memory first, then a temporary file), so a large post never sits in memory
whole and nothing is enqueued before the whole body has arrived within the limit: a 413 means no
export of that request was taken. A JSON array is split item by item with the standard decoder,
so one item at a time is in memory, not the whole parsed document.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO

from shared.core.export import MAX_NESTING

SPOOL_IN_MEMORY = 1024 * 1024
_CHUNK = 256 * 1024
_WHITESPACE = " \t\r\n"


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the request body is larger than {limit} bytes (API_MAX_BODY_BYTES); post the exports in several requests"
        )


class MalformedBody(ValueError):
    """A JSON array that is not valid JSON: its items cannot be told apart, so none is taken."""


async def spool(chunks: AsyncIterator[bytes], limit: int) -> IO[bytes]:
    """The whole body in a spooled temporary file, rewound; `BodyTooLarge` as soon as it passes `limit`."""
    body: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            body.write(chunk)
    except BaseException:
        body.close()
        raise
    body.seek(0)
    return body


def is_json_array(body: IO[bytes]) -> bool:
    """A body whose first non-blank character is `[` is a JSON array; anything else is JSON lines."""
    start = body.tell()
    try:
        while chunk := body.read(4096):
            stripped = chunk.lstrip(b" \t\r\n\xef\xbb\xbf")
            if stripped:
                return stripped.startswith(b"[")
        return False
    finally:
        body.seek(start)


def text_of(body: IO[bytes]) -> io.TextIOWrapper:
    """The body as text; invalid UTF-8 is replaced, so such a line is rejected with its text kept."""
    body.seek(0)
    return io.TextIOWrapper(body, encoding="utf-8-sig", errors="replace", newline="")


def json_lines(text: io.TextIOWrapper) -> Iterator[str]:
    """One export per line; blank lines keep their number so rejections name the line an editor shows."""
    for line in text:
        yield line.rstrip("\r\n")


def array_items(text: IO[str]) -> Iterator[str]:
    """The text of each item of a JSON array, in order; `MalformedBody` when the array is not valid JSON."""
    decoder = json.JSONDecoder()
    buffer, pos, eof = "", 0, False

    def fill() -> bool:
        nonlocal buffer, pos, eof
        chunk = text.read(_CHUNK)
        if not chunk:
            eof = True
            return False
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def next_char() -> str:
        """The next non-blank character (not consumed), or '' at the end of the body."""
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                pos += 1
            if pos < len(buffer) or not fill():
                return buffer[pos] if pos < len(buffer) else ""

    if next_char() != "[":
        raise MalformedBody("the body is not a JSON array")
    pos += 1
    number = 0
    if next_char() == "]":
        pos += 1
    else:
        while True:
            number += 1
            next_char()
            while True:
                try:
                    item, end = decoder.raw_decode(buffer, pos)
                except json.JSONDecodeError as exc:
                    if not eof and fill():
                        continue
                    raise MalformedBody(f"item {number} of the JSON array is not valid JSON: {exc.msg}") from None
                except RecursionError:  # its end cannot be found without parsing it, so no item can be told apart
                    raise MalformedBody(
                        f"item {number} of the JSON array is nested too deeply to read (an export nests at most "
                        f"{MAX_NESTING} levels)"
                    ) from None
                # An item ending exactly at the buffer's end may go on (a number cut in two): read on.
                if end == len(buffer) and not eof and fill():
                    continue
                break
            del item
            yield buffer[pos:end]
            pos = end
            separator = next_char()
            if separator == ",":
                pos += 1
                continue
            if separator == "]":
                pos += 1
                break
            raise MalformedBody(f"expected ',' or ']' after item {number} of the JSON array")
    if next_char() != "":
        raise MalformedBody("the body holds more after the end of the JSON array")
