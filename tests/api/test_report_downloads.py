"""The report's CSV downloads (api/report_downloads.py): every row, as the page filters and orders them,
streamed, and never a formula when a spreadsheet opens it."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from html import unescape

import httpx
import pytest
from sqlalchemy import delete, select, text

from shared.core.timestamps import iso_utc
from shared.queries.conflict_pages import list_conflicted_objects
from shared.queries.options import SortDirection, SortField
from shared.queries.provisioning_errors import ErrorFilter
from shared.store.engine import transaction
from shared.store.tables import DirectoryObject, FailedExport, ProvisioningError, Tenant
from shared.tenants.registry import TenantSpec, create_tenant
from shared.tenants.tokens import issue_token
from tests.api.conftest import ApiServer, TenantAccess
from tests.api.scenario import post
from tests.api.test_report_pages import browser
from tests.conftest import export_line

pytestmark = pytest.mark.integration

WAITERS = 8_000
CONFLICTS = 10_000  # one entry each, and a second one on every fourth waiter
HOLDERS = 50
DOWNLOAD_LINK = re.compile(r'<a href="([^"]+)" download>')

BUILD = [
    # Holders of the shared values: live users that claim their UPN.
    """INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name, wanted_upn,
           upn, wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at)
       SELECT :tenant, 'holder-' || h, gen_random_uuid()::text, 'User', 'Holder ' || h, 'shared-' || h || '@contoso.com',
           'shared-' || h || '@contoso.com', '[]'::jsonb, '[]'::jsonb, '{}'::jsonb, 1, false, now()
       FROM generate_series(0, :holders - 1) AS h""",
    """INSERT INTO claimed_values (tenant_id, key, object_pk, claimed_at)
       SELECT tenant_id, lower(upn), id, now() FROM directory_objects
       WHERE tenant_id = :tenant AND source_anchor LIKE 'holder-%'""",
    # Waiters of every class, with names a CSV must quote or a spreadsheet would run, some with none.
    """INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name, wanted_upn,
           upn, wanted_proxy_addresses, proxy_addresses, attributes, last_sequence, deleted, updated_at)
       SELECT :tenant, 'csv-' || lpad(n::text, 5, '0'), gen_random_uuid()::text,
           (ARRAY['User', 'Group', 'Contact'])[n % 3 + 1],
           CASE WHEN n % 101 = 0 THEN NULL
                WHEN n % 97 = 0 THEN '=HYPERLINK("http://evil.example","' || n || '")'
                WHEN n % 89 = 0 THEN '@SUM(' || n || ')'
                WHEN n % 83 = 0 THEN '-' || n || '+1'
                WHEN n % 79 = 0 THEN E'\\tTab ' || n
                WHEN n % 73 = 0 THEN 'Quote "' || n || E'", comma,\\nand a line break'
                ELSE 'Waiter ' || lpad(((n * 7919) % :waiters)::text, 5, '0') || ' Ünïcode' END,
           NULL, CASE WHEN n % 3 = 0 THEN 'waiter+' || lpad(n::text, 4, '0') || '@x.onmicrosoft.com' END,
           '[]'::jsonb, '[]'::jsonb, '{}'::jsonb, 1, false, now()
       FROM generate_series(0, :waiters - 1) AS n""",
    # Users wait for a holder's UPN, groups and contacts for it as an address (one namespace).
    """INSERT INTO provisioning_errors (tenant_id, object_pk, object_class, key, category, property_name,
           property_value, conflicting_object_id, occurred_at, reported_at)
       SELECT w.tenant_id, w.id, w.object_class, 'shared-' || (n % :holders) || '@contoso.com', 'PropertyConflict',
           CASE WHEN w.object_class = 'User' THEN 'UserPrincipalName' ELSE 'ProxyAddresses' END,
           CASE WHEN w.object_class = 'User' THEN 'Shared-' ELSE 'smtp:Shared-' END || (n % :holders) || '@contoso.com',
           h.object_id,
           timestamptz '2026-11-01 00:00:00Z' + ((n * 7919) % :waiters) * interval '1 second',
           CASE WHEN n % 5 = 0 THEN timestamptz '2026-11-02 00:00:00Z' + n * interval '1 millisecond' END
       FROM directory_objects w
       CROSS JOIN LATERAL (SELECT substr(w.source_anchor, 5)::int AS n) AS number
       JOIN directory_objects h ON h.tenant_id = w.tenant_id AND h.source_anchor = 'holder-' || (n % :holders)
       WHERE w.tenant_id = :tenant AND w.source_anchor LIKE 'csv-%'""",
    # Every fourth waiter also waits for an address whose holder is gone (it names a deleted object).
    """INSERT INTO provisioning_errors (tenant_id, object_pk, object_class, key, category, property_name,
           property_value, conflicting_object_id, occurred_at, reported_at)
       SELECT w.tenant_id, w.id, w.object_class, 'gone-' || n || '@contoso.com', 'PropertyConflict', 'ProxyAddresses',
           'SMTP:Gone-' || n || '@contoso.com', gen_random_uuid()::text,
           timestamptz '2026-11-03 00:00:00Z' + n * interval '1 second', NULL
       FROM directory_objects w
       CROSS JOIN LATERAL (SELECT substr(w.source_anchor, 5)::int AS n) AS number
       WHERE w.tenant_id = :tenant AND w.source_anchor LIKE 'csv-%' AND n % 4 = 0""",
]


@pytest.fixture(scope="module")
def many(api_server: ApiServer) -> Iterator[TenantAccess]:
    """A tenant with 10,000 conflicts, written in five SQL statements: only the read side is under test."""
    name = f"csv-{uuid.uuid4().hex[:8]}"
    with transaction() as session:
        tenant = create_tenant(session, TenantSpec(name=name, initial_domain=f"{name}.onmicrosoft.com"))
        secret = issue_token(session, tenant).secret
        for statement in BUILD:
            session.execute(text(statement), {"tenant": tenant.id, "holders": HOLDERS, "waiters": WAITERS})
    yield TenantAccess(tenant, secret)
    with transaction() as session:
        session.execute(delete(Tenant).where(Tenant.name == name))


def spreadsheet_safe(value: str) -> str:
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def moment(value: datetime | None) -> str:
    return iso_utc(value) or ""


def expected_conflicts(
    access: TenantAccess,
    wanted: ErrorFilter,
    sort: SortField = SortField.NONE,
    direction: SortDirection = SortDirection.ASCENDING,
) -> list[list[str]]:
    """The report's own query, all of it in one page, with when each entry was reported read beside it."""
    with transaction() as session:
        listed = list_conflicted_objects(
            session, access.tenant, wanted, sort_field=sort, sort_direction=direction, limit=2 * CONFLICTS
        )
        assert not listed.more
        reported = {
            (anchor, value): at
            for anchor, value, at in session.execute(
                select(DirectoryObject.source_anchor, ProvisioningError.property_value, ProvisioningError.reported_at)
                .join(DirectoryObject, DirectoryObject.id == ProvisioningError.object_pk)
                .where(ProvisioningError.tenant_id == access.tenant.id)
            )
        }
    return [
        [
            spreadsheet_safe(obj.display_name or ""),
            obj.source_anchor,
            obj.object_type,
            entry.holder_display_name or "",
            entry.holder_source_anchor or "",
            entry.conflicting_object_id,
            entry.property_name,
            spreadsheet_safe(entry.property_value),
            moment(entry.time_occurred),
            moment(reported[(obj.source_anchor, entry.property_value)]),
        ]
        for obj in listed.objects
        for entry in obj.entries
    ]


def download(http: httpx.Client, url: str) -> tuple[httpx.Response, list[list[str]]]:
    response = http.get(url)
    assert response.status_code == 200, response.text[:500]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    return response, rows


HEADER = [
    "Waiter",
    "WaiterSourceAnchor",
    "WaiterType",
    "Holder",
    "HolderSourceAnchor",
    "HolderObjectId",
    "Property",
    "Value",
    "Occurred",
    "Reported",
]


def test_ten_thousand_conflicts_download_equal_to_the_querys_rows(api_server: ApiServer, many: TenantAccess) -> None:
    with browser(api_server, many) as http:
        response, rows = download(http, f"/report/{many.name}/conflicts.csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="syncguard-conflicts-{many.name}.csv"'
    assert "content-length" not in response.headers and response.headers["transfer-encoding"] == "chunked", (
        "streamed a page at a time, not built whole"
    )
    assert response.content.startswith("\ufeff".encode()), "Excel reads it as UTF-8"
    assert rows[0] == HEADER
    assert len(rows) - 1 == CONFLICTS
    assert rows[1:] == expected_conflicts(many, ErrorFilter())
    gone = [row for row in rows[1:] if row[7].startswith("SMTP:Gone-")]
    assert len(gone) == 2000 and all(row[3] == row[4] == "" and row[5] for row in gone), "a holder gone: its id only"


def test_no_cell_is_a_formula_when_a_spreadsheet_opens_it(api_server: ApiServer, many: TenantAccess) -> None:
    with browser(api_server, many) as http:
        _, rows = download(http, f"/report/{many.name}/conflicts.csv")
    names = {row[1]: row[0] for row in rows[1:]}
    assert names["csv-00097"] == '\'=HYPERLINK("http://evil.example","97")'
    assert names["csv-00089"] == "'@SUM(89)"
    assert names["csv-00083"] == "'-83+1"
    assert names["csv-00079"] == "'\tTab 79"
    assert names["csv-00073"] == 'Quote "73", comma,\nand a line break', "quoted by the CSV, not prefixed"
    assert names["csv-00101"] == "", "no display name"
    assert not [cell for row in rows[1:] for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_the_download_follows_the_pages_order(api_server: ApiServer, many: TenantAccess) -> None:
    with browser(api_server, many) as http:
        _, rows = download(http, f"/report/{many.name}/conflicts.csv?sort=DisplayName&dir=Descending")
    assert rows[1:] == expected_conflicts(many, ErrorFilter(), SortField.DISPLAY_NAME, SortDirection.DESCENDING)
    assert rows[1][0] == "", "no display name sorts first when descending, as on the page"


def test_the_download_link_carries_the_pages_filters(api_server: ApiServer, many: TenantAccess) -> None:
    with browser(api_server, many) as http:
        shown = http.get(
            f"/report/{many.name}",
            params={"type": "Group", "property": "ProxyAddresses", "q": "gone", "sort": "UserPrincipalName"},
        )
        (link,) = DOWNLOAD_LINK.findall(shown.text)
        link = unescape(link)
        assert (
            link
            == f"/report/{many.name}/conflicts.csv?type=Group&property=ProxyAddresses&q=gone&sort=UserPrincipalName"
        )
        _, rows = download(http, link)
    wanted = ErrorFilter(property_name="ProxyAddresses", search="gone", object_type="Group")
    assert rows[1:] == expected_conflicts(many, wanted, SortField.USER_PRINCIPAL_NAME)
    assert len(rows) - 1 == len([n for n in range(WAITERS) if n % 4 == 0 and n % 3 == 1]) > 0
    assert {row[2] for row in rows[1:]} == {"Group"} and all("Gone-" in row[7] for row in rows[1:])


def test_a_download_needs_a_signed_in_browser(api_server: ApiServer, many: TenantAccess) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as http:
        for path in ("conflicts.csv", "failures.csv"):
            response = http.get(f"/report/{many.name}/{path}")
            assert response.status_code == 303 and response.headers["location"].startswith("/report?tenant=")
            assert "Waiter" not in response.text and "SourceAnchor" not in response.text


# Failed exports ---------------------------------------------------------------------------------------

FAILURE_HEADER = [
    "SourceAnchor",
    "ObjectType",
    "ErrorCode",
    "Message",
    "WhatToDo",
    "FirstFailed",
    "LastFailed",
    "Attempts",
]


def test_failed_exports_download_with_the_tabs_filter(
    api_server: ApiServer, client: httpx.Client, access: TenantAccess
) -> None:
    """Invalid lines posted over the API are filed at once, no worker needed."""
    bad_upn = [export_line(access.name, f"bad-{n:03d}", userPrincipalName=f"no-at-sign-{n}") for n in range(30)]
    too_many = [
        export_line(access.name, f"big-{n:03d}", "Group", proxyAddresses=[f"smtp:a{i}@contoso.com" for i in range(301)])
        for n in range(12)
    ]
    formula = [export_line(access.name, "=cmd|' /C calc'!A0", userPrincipalName="bad")]
    assert post(client, access, bad_upn + too_many + formula)["rejected"] == 43
    with browser(api_server, access) as http:
        _, everything = download(http, f"/report/{access.name}/failures.csv")
        shown = http.get(f"/report/{access.name}/failures", params={"code": "LargeObject", "q": "big-00", "size": "25"})
        (link,) = DOWNLOAD_LINK.findall(shown.text)
        link = unescape(link)
        assert link == f"/report/{access.name}/failures.csv?code=LargeObject&q=big-00", "every row: no page size"
        _, large = download(http, link)
    assert everything[0] == FAILURE_HEADER and len(everything) - 1 == 43
    with transaction() as session:
        filed = session.scalars(
            select(FailedExport)
            .where(FailedExport.tenant == access.name)
            .order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
        ).all()
    assert [row[0] for row in everything[1:]] == [spreadsheet_safe(f.source_anchor or "") for f in filed]
    assert [row[2:4] for row in everything[1:]] == [[f.error_code, spreadsheet_safe(f.message)] for f in filed]
    assert [row[5:] for row in everything[1:]] == [
        [moment(f.first_failed), moment(f.last_failed), str(f.attempts)] for f in filed
    ]
    assert "'=cmd|' /C calc'!A0" in [row[0] for row in everything[1:]]
    assert [row[0] for row in large[1:]] == [f"big-{n:03d}" for n in range(9, -1, -1)], (
        "big-000 to big-009, newest first"
    )
    assert all(
        row[2] == "LargeObject" and row[4].startswith(f"The export of {row[0]} is too large") for row in large[1:]
    )
