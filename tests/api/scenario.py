"""Exports posted over HTTP that leave one conflict of each object class, applied by real workers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from redis import Redis

from shared.exports.post_ledger import outcomes, wait_for
from tests.api.conftest import TenantAccess
from tests.conftest import export_line


def post(client: httpx.Client, access: TenantAccess, lines: list[str]) -> dict[str, Any]:
    """POST as JSON lines and return the 202 body."""
    response = client.post(
        f"/v1/tenants/{access.name}/exports",
        content="\n".join(lines).encode(),
        headers={**access.headers, "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def post_and_wait(client: httpx.Client, redis: Redis, access: TenantAccess, lines: list[str]) -> dict[str, Any]:
    """POST, then wait until the workers have applied every accepted export."""
    posted = post(client, access, lines)
    assert wait_for(redis, posted["batch"], posted["accepted"], 120), "workers did not finish in time"
    posted["outcomes"] = outcomes(redis, posted["batch"])
    return posted


@dataclass(frozen=True)
class Directory:
    """Holders first, then the objects that ask for what the holders have."""

    access: TenantAccess
    holders: dict[str, Any]
    waiters: dict[str, Any]


HOLDERS = [
    (
        "alice",
        "User",
        {
            "displayName": "Alice Wong",
            "userPrincipalName": "alice@contoso.com",
            "proxyAddresses": ["SMTP:alice@contoso.com"],
        },
    ),
    ("sales", "Group", {"displayName": "Sales", "proxyAddresses": ["SMTP:sales@contoso.com"]}),
    ("carl", "Contact", {"displayName": "Carl Extern", "proxyAddresses": ["SMTP:carl@partner.example"]}),
]
WAITERS = [
    (
        "bob",
        "User",
        {
            "displayName": "Alice Walker",
            "userPrincipalName": "Alice@contoso.com",
            "proxyAddresses": ["SMTP:walker@contoso.com"],
        },
    ),
    ("team", "Group", {"displayName": "Team", "proxyAddresses": ["SMTP:team@contoso.com", "smtp:alice@contoso.com"]}),
    ("salesfwd", "Contact", {"displayName": "Sales Forward", "proxyAddresses": ["SMTP:sales@contoso.com"]}),
]


def build_directory(client: httpx.Client, redis: Redis, access: TenantAccess) -> Directory:
    holders = post_and_wait(client, redis, access, [export_line(access.name, a, c, **attrs) for a, c, attrs in HOLDERS])
    waiters = post_and_wait(client, redis, access, [export_line(access.name, a, c, **attrs) for a, c, attrs in WAITERS])
    assert holders["outcomes"] == {"applied": 3} and waiters["outcomes"] == {"applied": 3}
    return Directory(access, holders, waiters)


def as_array(lines: list[str]) -> bytes:
    return json.dumps([json.loads(line) for line in lines]).encode()
