"""Hostile requests from a corpus (tests/api/hostile_inputs.jsonl) against the running service: a
clear 4xx, never a 5xx.

Schemathesis (test_openapi_fuzz.py) generates from the OpenAPI document, so it never sends what the
document cannot describe: huge numbers, JSON nested 100,000 deep, 10,000-element arrays, bytes that are
not UTF-8, NUL, lone surrogates, CR/LF in header values, overlong values, a broken `Content-Length`;
nor does it reach the routes outside the document (the Graph face, the web report). This corpus does.
Each request goes over a raw socket, byte for byte as the corpus says, since an HTTP client library
refuses to send most of them. A case names the status it must get where one answer is obviously
right, or the few that are; every case must get one below 500.

Cases with `cli` run `syncguard` instead: header injection through a tenant's technical contacts,
which end up in the `To:` of the report email.

A corpus line: `id`, `why`, then either `cli` (arguments, `{tenant}` filled in) with `exit` and
`says`, or `method`, `path`, optional `query` (the raw query string), `headers`, `body`, `auth`
(default true: the tenant's own bearer token), `expect` (a status or a list), `says` (a substring of
the answer), `known` (a 5xx reported to the owner of its code, expected to fail until fixed).
Strings may be `{"parts": [...]}`, each part a string or `[string, times]`, or
`{"hex": "..."}` for raw bytes; a body may also be `{"json": value}` or `{"form": {...}}`.
`{tenant}`, `{tenant_id}` and `{token}` are filled in everywhere.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import delete

from harness.local_services import REPO
from shared.store.engine import transaction
from shared.store.tables import FailedExport, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.services import service_environment

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).with_name("hostile_inputs.jsonl")
CASES = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def target(api_server: ApiServer) -> Iterator[TenantAccess]:
    """A tenant of its own, deleted afterwards with whatever the cases filed for it."""
    name = f"hostile-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
    yield TenantAccess(tenant, secret)
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name.startswith(name)))
        session.execute(delete(FailedExport).where(FailedExport.tenant.startswith(name)))


def expand(value: Any, fill: dict[str, str]) -> bytes:
    """A corpus string as the bytes to send."""
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    if isinstance(value, dict) and "parts" in value:
        return b"".join(
            expand(part[0], fill) * int(part[1]) if isinstance(part, list) else expand(part, fill)
            for part in value["parts"]
        )
    text = str(value)
    for name, filling in fill.items():
        text = text.replace("{" + name + "}", filling)
    # surrogatepass: a lone surrogate written in the corpus goes out as the (invalid) bytes it stands for
    return text.encode("utf-8", "surrogatepass")


def body_of(case: dict[str, Any], fill: dict[str, str]) -> tuple[bytes, dict[str, bytes]]:
    body = case.get("body")
    if body is None:
        return b"", {}
    if isinstance(body, dict) and "json" in body:
        text = json.dumps(body["json"]).replace("{tenant}", fill["tenant"])
        return text.encode(), {"content-type": b"application/json"}
    if isinstance(body, dict) and "form" in body:
        form = {k: expand(v, fill) for k, v in body["form"].items()}
        return urlencode(form).encode(), {"content-type": b"application/x-www-form-urlencoded"}
    return expand(body, fill), {}


def request_bytes(case: dict[str, Any], server: ApiServer, fill: dict[str, str]) -> bytes:
    target = expand(case["path"], fill)
    if "query" in case:
        target += b"?" + expand(case["query"], fill)
    body, implied = body_of(case, fill)
    headers = {**implied, **{k.lower(): expand(v, fill) for k, v in case.get("headers", {}).items()}}
    if case.get("auth", True):
        headers.setdefault("authorization", f"Bearer {fill['token']}".encode())
    if body and "content-length" not in headers and "transfer-encoding" not in headers:
        headers["content-length"] = str(len(body)).encode()
    headers.setdefault("host", urlsplit(server.url).netloc.encode())
    headers["connection"] = b"close"
    head = b"%s %s HTTP/1.1\r\n" % (case["method"].encode(), target)
    head += b"".join(b"%s: %s\r\n" % (name.encode(), value) for name, value in headers.items())
    return head + b"\r\n" + body


def exchange(server: ApiServer, request: bytes) -> tuple[int, bytes]:
    """Send while reading (a server may answer 413 before the body is all sent); status and body."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=60) as connection:

        def push() -> None:
            try:
                connection.sendall(request)
            except OSError:
                pass  # the server answered and closed before taking the rest

        sender = threading.Thread(target=push, daemon=True)
        sender.start()
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        sender.join(timeout=60)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 "), f"no HTTP answer: {answer[:200]!r}"
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def run_cli(case: dict[str, Any], fill: dict[str, str]) -> None:
    # argv is bytes: what the corpus spells as bytes that are no UTF-8 reaches the CLI as such
    args = [expand(a, fill).decode("utf-8", "surrogateescape") for a in case["cli"]]
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=REPO,
        env=service_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == case["exit"], (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert case["says"] in done.stderr, done.stderr


def params() -> list[Any]:
    """A case with `known` is a 5xx reported and not fixed yet: strict xfail, so its fix shows as XPASS."""
    return [
        pytest.param(c, id=c["id"], marks=[pytest.mark.xfail(strict=True, reason=c["known"])] if "known" in c else [])
        for c in CASES
    ]


@pytest.mark.parametrize("case", params())
def test_a_hostile_request_gets_a_clear_4xx_never_a_5xx(
    case: dict[str, Any], api_server: ApiServer, target: TenantAccess
) -> None:
    fill = {"tenant": target.name, "token": target.token, "tenant_id": str(target.tenant.id)}
    if "cli" in case:
        run_cli(case, {"tenant": f"{target.name}-cli-{uuid.uuid4().hex[:8]}"})
        return
    status, body = exchange(api_server, request_bytes(case, api_server, fill))
    shown = body[:300].decode(errors="replace")
    assert status < 500, f"{case['id']}: {status} {shown}"
    expected = case.get("expect")
    if expected is not None:
        assert status in (expected if isinstance(expected, list) else [expected]), f"{case['id']}: {status} {shown}"
    if "says" in case:
        assert case["says"] in body.decode(errors="replace"), f"{case['id']}: {shown}"


def test_the_corpus_reaches_every_face_and_every_kind_of_hostile_input() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids are unique"
    paths = " ".join(str(c.get("path", "")) for c in CASES)
    for face in ("/v1/tenants/", "/v1.0/", "/report", "/healthz", "/metrics"):
        assert face in paths, face
    assert any("cli" in c for c in CASES)
