"""The bad-input corpus (bad_inputs.jsonl): each case, the wire text it becomes, what it must fail with.

The data file stays readable: huge values are written as small expansion markers (`$repeat`,
`$string`, `$concat`, `$nest`) and the tenant as `$TENANT`, filled in here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).with_name("bad_inputs.jsonl")
TENANT_MARKER = "$TENANT"


@dataclass(frozen=True)
class BadInput:
    case: str
    text: str  # exactly what travels on the queue
    message: Any  # the decoded JSON value, when the text is JSON at all
    is_json: bool
    code: str
    fragment: str

    @property
    def is_object(self) -> bool:
        return self.is_json and isinstance(self.message, dict)


def _expand(value: Any, tenant: str) -> Any:
    if isinstance(value, str):
        return tenant if value == TENANT_MARKER else value.replace(TENANT_MARKER, tenant)
    if isinstance(value, list):
        return [_expand(v, tenant) for v in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return [value["$repeat"].replace("{i}", str(i)) for i in range(value["times"])]
    if "$string" in value:
        return value["$string"] * value["times"]
    if "$concat" in value:
        return "".join(_expand(part, tenant) for part in value["$concat"])
    if "$nest" in value:
        nested = _expand(value["leaf"], tenant)
        for _ in range(value["$nest"]):
            nested = {"level": nested}
        return nested
    return {_expand(k, tenant): _expand(v, tenant) for k, v in value.items()}


def load(tenant: str) -> list[BadInput]:
    cases = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        spec = json.loads(line)
        if "text" in spec:
            text = _expand(spec["text"], tenant)
            try:
                message, is_json = json.loads(text), True
            except (ValueError, RecursionError):
                message, is_json = None, False
        else:
            message, is_json = _expand(spec["message"], tenant), True
            text = json.dumps(message)
        cases.append(BadInput(spec["case"], text, message, is_json, spec["code"], spec["fragment"]))
    return cases
