"""Request bodies: one size limit for every route (api/limits.py), over real HTTP; and splitting a posted
body into exports (api/body.py), JSON arrays item by item across read boundaries, and JSON lines."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from api import body as body_module
from api.body import BodyTooLarge, MalformedBody, array_items, is_json_array, spool, text_of
from tests.api.conftest import ApiServer, TenantAccess, running_api
from tests.conftest import export_line

FEATURE = "DuplicateUPNResiliency"
ENABLE = b'{"enabled": true}'  # valid JSON however many blanks follow it
JSON = {"Content-Type": "application/json"}


def features_of(client: httpx.Client, access: TenantAccess) -> dict[str, bool]:
    features: dict[str, bool] = client.get(f"/v1/tenants/{access.name}/features", headers=access.headers).json()
    return features


@pytest.mark.integration
def test_an_80_mb_body_to_a_small_route_is_413_from_its_length_and_nothing_is_done(
    client: httpx.Client, api_server: ApiServer, make_access: Callable[..., TenantAccess]
) -> None:
    """Issue 11, finding 3: only the exports route had a limit; an 80 MB body to this one was read whole."""
    access = make_access(upn_resiliency=False)
    body = ENABLE + b" " * (80 * 1024 * 1024)
    response = client.put(
        f"/v1/tenants/{access.name}/features/{FEATURE}",
        content=body,
        headers={**access.headers, **JSON},
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json()["detail"] == (
        f"the request body is larger than {api_server.body_limit} bytes (API_MAX_BODY_BYTES); this route reads no more"
    )
    assert features_of(client, access)[FEATURE] is False, "the body was never parsed, so nothing was enabled"


@pytest.mark.integration
def test_a_streamed_body_is_413_as_soon_as_it_passes_the_limit_and_nothing_is_done(
    client: httpx.Client, api_server: ApiServer, make_access: Callable[..., TenantAccess]
) -> None:
    access = make_access(upn_resiliency=False)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
        yield ENABLE
        for _ in range(api_server.body_limit // 4096 + 2):
            yield b" " * 4096

    response = client.put(
        f"/v1/tenants/{access.name}/features/{FEATURE}", content=chunks(), headers={**access.headers, **JSON}
    )
    assert response.status_code == 413, response.text[:300]
    assert f"larger than {api_server.body_limit} bytes" in response.json()["detail"]
    assert features_of(client, access)[FEATURE] is False


@pytest.mark.integration
def test_every_route_has_the_limit_even_one_that_takes_no_body(client: httpx.Client, api_server: ApiServer) -> None:
    big = b"x" * (api_server.body_limit + 1)
    for method, path in [("POST", "/report/sign-in"), ("GET", "/healthz"), ("POST", "/no/such/route")]:
        response = client.request(method, path, content=big)
        assert response.status_code == 413, (method, path, response.status_code)
    assert client.get("/healthz").status_code == 200, "a small request still gets through"


@pytest.mark.integration
def test_a_face_gets_its_413_in_its_own_error_shape(client: httpx.Client, api_server: ApiServer) -> None:
    """A Graph client reads `error.code`, a SCIM client the SCIM error message; neither reads `detail`."""
    big = b"x" * (api_server.body_limit + 1)
    graph = client.patch("/v1.0/directory/onPremisesSynchronization/1", content=big, headers=JSON)
    assert graph.status_code == 413
    assert graph.json()["error"]["code"] == "Request_EntityTooLarge"
    assert "larger than" in graph.json()["error"]["message"]
    scim = client.post("/scim/v2/Users", content=big, headers={"Content-Type": "application/scim+json"})
    assert scim.status_code == 413
    assert scim.headers["content-type"].startswith("application/scim+json")
    assert scim.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert scim.json()["status"] == "413"


@pytest.fixture(scope="module")
def small_limits(database: str) -> Iterator[ApiServer]:
    """An API whose routes other than posting exports take 8 KiB."""
    with running_api(API_MAX_OTHER_BODY_BYTES="8192") as server:
        yield server


@pytest.mark.integration
def test_routes_other_than_posting_exports_have_their_own_lower_limit(
    small_limits: ApiServer, make_access: Callable[..., TenantAccess]
) -> None:
    access = make_access(upn_resiliency=False)
    padded = ENABLE + b" " * 8192
    line = export_line(access.name, "c", "Contact", displayName="c" * 200)
    exports = "\n".join([line] * (2 * 8192 // len(line))).encode()
    with httpx.Client(base_url=small_limits.url, timeout=60, headers={**access.headers, **JSON}) as http:
        refused = http.put(f"/v1/tenants/{access.name}/features/{FEATURE}", content=padded)
        assert refused.status_code == 413
        assert refused.json()["detail"] == (
            "the request body is larger than 8192 bytes (API_MAX_OTHER_BODY_BYTES); this route reads no more"
        )
        assert http.put(f"/v1/tenants/{access.name}/features/{FEATURE}", content=ENABLE).status_code == 200
        posted = http.post(f"/v1/tenants/{access.name}/exports", content=exports)
        assert posted.status_code == 202, "posting exports keeps API_MAX_BODY_BYTES"
        assert posted.json()["accepted"] == 2 * 8192 // len(line)


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
        ("[" * 50_000 + "]" * 50_000, "item 1 of the JSON array is nested too deeply to read"),
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
