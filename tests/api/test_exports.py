"""POST /v1/tenants/{tenant}/exports over real HTTP: validated like `syncguard post`, enqueued for real workers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import func, select

from harness.local_services import free_port
from shared.cli import cli
from shared.exports.producer import REJECTIONS_LISTED
from shared.queries.failures import list_failures
from shared.store.engine import transaction
from shared.store.tables import FailedExport
from shared.tenants.registry import require
from tests.api import conftest as api_conftest
from tests.api.conftest import ApiServer, TenantAccess, running_api
from tests.api.scenario import as_array, post, post_and_wait
from tests.conftest import export_line
from tests.workers.helpers import object_view

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _workers(workers: object) -> None:
    """Every test here runs with real workers consuming what the API enqueues."""


def failures_of(name: str) -> list[tuple[str | None, str]]:
    with transaction() as session:
        return [(f.source_anchor, f.error_code) for f in list_failures(session, require(session, name))]


def exports_url(access: TenantAccess) -> str:
    return f"/v1/tenants/{access.name}/exports"


def test_json_lines_answer_202_with_counts_and_each_rejection_and_the_valid_ones_apply(
    client: httpx.Client, redis_client: Redis, access: TenantAccess
) -> None:
    lines = [
        export_line(access.name, "u1", displayName="One", userPrincipalName="one@contoso.com"),
        export_line(access.name, "g1", "Group", userPrincipalName="g1@contoso.com"),
        "",
        "this is not json",
        export_line(access.name, "c1", "Contact", proxyAddresses=["SMTP:c1@contoso.com"]),
        export_line(access.name, "u2", displayName="Two"),
    ]
    posted = post_and_wait(client, redis_client, access, lines)
    assert posted["accepted"] == 2 and posted["rejected"] == 3
    assert [(r["item"], r["errorCode"]) for r in posted["rejections"]] == [
        (2, "DataValidationFailed"),
        (4, "DataValidationFailed"),
        (6, "DataValidationFailed"),
    ]
    assert "only Users have one" in posted["rejections"][0]["error"]
    assert "not valid JSON" in posted["rejections"][1]["error"]
    assert posted["outcomes"] == {"applied": 2}
    assert sorted(failures_of(access.name), key=str) == sorted(
        [("g1", "DataValidationFailed"), (None, "DataValidationFailed"), ("u2", "DataValidationFailed")], key=str
    ), "every rejected item is recorded as a failed export of the tenant, the non-JSON one too"


def test_a_json_array_is_accepted_too(client: httpx.Client, redis_client: Redis, access: TenantAccess) -> None:
    lines = [
        export_line(access.name, f"a{n}", "Contact", displayName=f"Contact {n}", proxyAddresses=[f"SMTP:a{n}@x.com"])
        for n in range(3)
    ] + [export_line(access.name, "bad", "Robot")]
    response = client.post(
        exports_url(access), content=as_array(lines), headers={**access.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (3, 1)
    assert body["rejections"][0]["item"] == 4


def test_a_broken_json_array_is_400_and_enqueues_nothing(client: httpx.Client, access: TenantAccess) -> None:
    good = export_line(access.name, "u1", displayName="One", userPrincipalName="one@contoso.com")
    response = client.post(exports_url(access), content=f"[{good}, {{broken".encode(), headers=access.headers)
    assert response.status_code == 400
    assert "item 2 of the JSON array is not valid JSON" in response.json()["detail"]
    assert "nothing was enqueued" in response.json()["detail"]
    assert failures_of(access.name) == []


def test_an_export_for_another_tenant_is_rejected_and_filed_under_the_poster(
    client: httpx.Client, access: TenantAccess, make_access: object
) -> None:
    other = make_access()  # type: ignore[operator]
    posted = post(client, access, [export_line(other.name, "x", displayName="X", userPrincipalName="x@contoso.com")])
    assert posted["accepted"] == 0
    assert f"is for tenant {other.name!r} but was posted for tenant {access.name!r}" in posted["rejections"][0]["error"]
    assert failures_of(access.name) == [("x", "DataValidationFailed")]
    assert failures_of(other.name) == [], "a token for one tenant never writes into another tenant's report"


def test_an_invalid_export_naming_another_tenant_is_filed_under_the_poster(
    client: httpx.Client, access: TenantAccess, make_access: object
) -> None:
    other = make_access()  # type: ignore[operator]
    posted = post(client, access, [export_line(other.name, "y", "Group", userPrincipalName="y@contoso.com")])
    assert posted["rejected"] == 1
    assert failures_of(other.name) == [] and failures_of(access.name) == [("y", "DataValidationFailed")]


def test_a_failed_export_naming_another_tenant_is_never_sent_again_by_a_retry(
    client: httpx.Client, redis_client: Redis, access: TenantAccess, make_access: Callable[..., TenantAccess]
) -> None:
    """Issue 11, finding 1: the raw line kept with A's failure named B, and `failures retry --tenant A`
    sent it as it was, so A's token created an object in B."""
    other = make_access()
    line = export_line(other.name, "intruder", displayName="Intruder", userPrincipalName="intruder@contoso.com")
    assert post(client, access, [line])["rejected"] == 1

    retried = CliRunner().invoke(
        cli,
        ["failures", "retry", "--tenant", access.name, "--wait", "--timeout", "60", "--json"],
        prog_name="syncguard",
    )
    assert retried.exit_code == 0, retried.output
    assert object_view(other.name, "intruder") is None, "nothing was written into the other tenant"
    assert failures_of(other.name) == []
    payload = json.loads(retried.stdout)
    assert payload["enqueued"] == 0, "a message naming another tenant is never sent"
    assert [(r["sourceAnchor"], r["errorCode"]) for r in payload["rejected"]] == [("intruder", "DataValidationFailed")]
    assert f"is for tenant {other.name!r} but was posted for tenant {access.name!r}" in payload["rejected"][0]["error"]
    with transaction() as session:
        kept = session.scalars(select(FailedExport).where(FailedExport.tenant == access.name)).one()
    assert (kept.source_anchor, kept.attempts) == ("intruder", 2), "still the poster's failure, one more attempt"


# --- memory per request -------------------------------------------------------------------------

FLOOD_LINES = 300_000
FLOOD_GROWTH_BOUND_MB = 100


def api_pid(server: ApiServer) -> int:
    """The uvicorn process serving `server` (the one started with its port)."""
    port = server.url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"uvicorn" in argv and b"--port" in argv and port.encode() in argv:
            return int(proc.name)
    raise LookupError(f"no uvicorn process serves port {port}")


def memory_mb(pid: int, field: str) -> float:
    """`VmRSS` (now) or `VmHWM` (the peak since the process began) of a process, in MB."""
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


@pytest.fixture
def flood_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiServer]:
    """An API that takes the 600 KB flood in one body (the suite's server stops at 256 KiB)."""
    monkeypatch.setattr(api_conftest, "BODY_LIMIT", 1024 * 1024)
    with running_api() as server:
        yield server


def test_300000_junk_lines_are_all_filed_and_the_api_grows_by_far_less_than_they_would_take_one_by_one(
    flood_server: ApiServer, access: TenantAccess
) -> None:
    """Issue 11, finding 2: the landed code kept every rejection, its exception and traceback until the
    end of the request, and grew the API by 1,058 MB for 300,000 lines (the pod's limit is 512 Mi)."""
    pid = api_pid(flood_server)
    url = f"{flood_server.url}{exports_url(access)}"
    with httpx.Client(timeout=600, headers=access.headers) as http:
        assert http.post(url, content=b"x\n" * 100).status_code == 202  # warm: imports, pools, caches
        before = memory_mb(pid, "VmRSS")
        response = http.post(url, content=b"x\n" * FLOOD_LINES)
        growth = memory_mb(pid, "VmHWM") - before
    print(f"\nAPI peak memory growth for {FLOOD_LINES} junk lines: {growth:.1f} MB (RSS before: {before:.1f} MB)")

    assert response.status_code == 202, response.text
    assert growth < FLOOD_GROWTH_BOUND_MB, f"one request grew the API by {growth:.0f} MB"
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, FLOOD_LINES)
    assert body["rejectedByCode"] == {"DataValidationFailed": FLOOD_LINES}
    assert len(body["rejections"]) == REJECTIONS_LISTED, "the first of each code in full, the rest counted"
    assert [r["item"] for r in body["rejections"][:3]] == [1, 2, 3]
    with transaction() as session:
        filed = session.scalar(select(func.count()).where(FailedExport.tenant == access.name))
    assert filed == 100 + FLOOD_LINES, "every rejected line is kept as a failed export: nothing half-lost"


# --- 413 ----------------------------------------------------------------------------------------


def _body_over(limit: int, access: TenantAccess) -> bytes:
    line = export_line(access.name, "big", displayName="x" * 200, userPrincipalName="big@contoso.com")
    return ("\n".join([line] * (limit // len(line) + 2))).encode()


def test_a_body_declared_larger_than_the_limit_is_413_and_enqueues_nothing(
    client: httpx.Client, api_server: ApiServer, access: TenantAccess
) -> None:
    body = _body_over(api_server.body_limit, access)
    response = client.post(exports_url(access), content=body, headers=access.headers)
    assert response.status_code == 413
    assert f"larger than {api_server.body_limit} bytes" in response.json()["detail"]
    assert "several requests" in response.json()["detail"]


def test_a_streamed_body_that_grows_past_the_limit_is_413_and_enqueues_nothing(
    client: httpx.Client, api_server: ApiServer, access: TenantAccess
) -> None:
    body = _body_over(api_server.body_limit, access)
    invalid_first = json.dumps({"tenant": access.name, "sourceAnchor": "first"}).encode() + b"\n"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server has to count
        yield invalid_first
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    response = client.post(exports_url(access), content=chunks(), headers=access.headers)
    assert response.status_code == 413
    assert failures_of(access.name) == [], "not even the invalid first line was taken"


def test_a_body_just_under_the_limit_is_accepted(
    client: httpx.Client, api_server: ApiServer, access: TenantAccess
) -> None:
    line = export_line(access.name, "same", "Contact", displayName="y" * 200)
    count = (api_server.body_limit - 1) // (len(line) + 1)
    body = "\n".join([line] * count).encode()
    assert len(body) < api_server.body_limit
    response = client.post(exports_url(access), content=body, headers=access.headers)
    assert response.status_code == 202
    assert response.json()["accepted"] == count


def test_an_unreachable_broker_is_503_saying_to_post_again(access: TenantAccess) -> None:
    line = export_line(access.name, "u1", displayName="One", userPrincipalName="one@contoso.com")
    with (
        running_api(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0") as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        response = http.post(exports_url(access), content=line.encode(), headers=access.headers)
    assert response.status_code == 503, response.text
    assert "the broker could not be reached" in response.json()["detail"]
    assert "post the exports again" in response.json()["detail"]
