"""The 422 answer to a request that fails validation, whatever the request held.

FastAPI's own handler echoes each error's `input` back, and the JSON response then refuses what a
hostile body can hold: `1e999` and `NaN` parse to floats JSON cannot carry (ValueError), an escaped
lone surrogate is a string UTF-8 cannot encode (UnicodeEncodeError), and a deeply nested input
outruns the recursion of `jsonable_encoder`. Each was a 500 instead of the 422
(tests/api/hostile_inputs.jsonl). Here the echo is made printable first: a non-finite number as its
text, a lone surrogate as its escape, anything nested deeper than a few levels as "...".
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

MAX_ECHO_DEPTH = 8


def printable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON can carry it and UTF-8 can encode it, cut below MAX_ECHO_DEPTH levels."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {str(printable(k, depth + 1)): printable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [printable(item, depth + 1) for item in value]
    return printable(str(value), depth)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with FastAPI's `detail` list (loc, msg, type, input, ctx), printable."""
    return JSONResponse({"detail": printable(list(exc.errors()))}, status_code=422)
