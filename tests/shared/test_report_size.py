"""Reports stay deliverable whatever the numbers: a bounded email, totals and the web report's address.

A flood leaves a tenant with 300,000 failed exports. Listing them all made a ~100 MB email that a
relay refuses (552) every hour, for good. Here a real aiosmtpd relay with Postfix's default size limit
takes the report, and the quarantines past the cap stay unreported until an email lists them in full,
so across reports each appears exactly once. The rows go in by bulk SQL: the report reads the store,
and 300,000 exports through workers would test the workers instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from redis import Redis
from sqlalchemy import func, select, text

from shared.locks.manager import LockManager
from shared.reports.sending import ReportOutcome, send_error_reports
from shared.settings import Settings
from shared.store.engine import transaction
from shared.store.tables import ProvisioningError, Tenant
from tests.shared.smtp_servers import MailServer, Received

CONTACT = "flood@contoso.test"
RELAY_LIMIT = 10_240_000  # Postfix's default message_size_limit
BASE_URL = "https://syncguard.example.test"


def flood(tenant: Tenant, *, failures: int, quarantines: int, value: str = "", message: str = "") -> None:
    """`failures` failed exports and `quarantines` unreported quarantines (q-000001 the oldest)."""
    with transaction() as session:
        session.execute(
            text(
                """
                INSERT INTO failed_exports (tenant, source_anchor, object_class, error_code, message, raw,
                                            first_failed, last_failed, attempts)
                SELECT :tenant, 'junk-' || g, NULL, 'DataValidationFailed',
                       'line ' || g || ' is not JSON: Expecting value: line 1 column 1 (char 0)' || :message,
                       'junk line ' || g, now() - interval '2 hours', now() - g * interval '1 millisecond', 1
                FROM generate_series(1, :n) AS g
                """
            ),
            {"tenant": tenant.name, "n": failures, "message": message},
        )
        session.execute(
            text(
                """
                WITH waiters AS (
                  INSERT INTO directory_objects (tenant_id, source_anchor, object_id, object_class, display_name,
                                                 wanted_proxy_addresses, proxy_addresses, attributes,
                                                 last_sequence, deleted, updated_at)
                  SELECT :tenant_id, 'q-' || lpad(g::text, 6, '0'), gen_random_uuid()::text, 'Contact',
                         'Waiter ' || g, jsonb_build_array('SMTP:team' || g || '@flood.test'), '[]', '{}',
                         1, false, now()
                  FROM generate_series(1, :n) AS g
                  RETURNING id, source_anchor
                )
                INSERT INTO provisioning_errors (tenant_id, object_pk, key, category, property_name, property_value,
                                                 conflicting_object_id, occurred_at)
                SELECT :tenant_id, w.id, 'team' || w.source_anchor || '@flood.test', 'PropertyConflict',
                       'ProxyAddresses', 'SMTP:team' || w.source_anchor || :value || '@flood.test',
                       gen_random_uuid()::text,
                       now() - interval '1 day' + substr(w.source_anchor, 3)::int * interval '1 second'
                FROM waiters AS w
                """
            ),
            {"tenant_id": tenant.id, "n": quarantines, "value": value},
        )


def plain(received: Received) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def listed_quarantines(received: Received) -> list[str]:
    return re.findall(r"\[(q-\d{6})\]", plain(received))


def unreported(tenant: Tenant) -> int:
    with transaction() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ProvisioningError)
                .where(ProvisioningError.tenant_id == tenant.id, ProvisioningError.reported_at.is_(None))
            )
            or 0
        )


def run_reports(times: int, settings: Settings, redis: Redis, tenant: Tenant) -> list[ReportOutcome]:
    return [send_error_reports(settings, LockManager(redis), tenant.name)[0] for _ in range(times)]


def test_300000_failures_make_one_bounded_email_and_each_quarantine_comes_once(
    make_tenant: Callable[..., Tenant], redis_client: Redis
) -> None:
    tenant = make_tenant(technical_contacts=(CONTACT,))
    flood(tenant, failures=300_000, quarantines=1_200)
    with MailServer(data_size_limit=RELAY_LIMIT) as mail:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=mail.port, report_base_url=BASE_URL + "/")
        outcomes = run_reports(4, settings, redis_client, tenant)

    emails = mail.for_recipient(CONTACT)
    print(
        f"\nreport email for a tenant with 300,000 failed exports and 1,200 new quarantines: "
        f"{emails[0].size:,} bytes (REPORT_MAX_BYTES {settings.report_max_bytes:,}; relay limit {RELAY_LIMIT:,})"
    )
    assert len(emails) == 4, "one email a run: failures are reported until fixed"
    assert all(e.size <= settings.report_max_bytes < RELAY_LIMIT for e in emails), [e.size for e in emails]
    assert [(o.conflicts, o.conflicts_waiting, o.failures) for o in outcomes] == [
        (500, 700, 300_000),
        (500, 200, 300_000),
        (200, 0, 300_000),
        (0, 0, 300_000),
    ]

    first = plain(emails[0])
    assert "1,200 new attribute conflict(s) were quarantined (1,200 ProxyAddresses)" in first
    assert "This email lists the oldest 500; the other 700 come in the next reports" in first
    assert f"the web report lists them all: {BASE_URL}/report/{tenant.name}." in first
    assert "300,000 export(s) are failing (300,000 DataValidationFailed)" in first
    assert (
        f"This email lists the latest 500; the web report lists them all: {BASE_URL}/report/{tenant.name}/failures"
        in first
    )
    assert first.count("] DataValidationFailed") == 500
    html = emails[0].message.get_body(("html",)).get_content()
    assert f'<a href="{BASE_URL}/report/{tenant.name}">' in html and "300,000 failing export(s)" in html

    per_email = [listed_quarantines(e) for e in emails]
    assert per_email[0] == [f"q-{n:06d}" for n in range(1, 501)], "the oldest first"
    assert [len(q) for q in per_email] == [500, 500, 200, 0]
    seen = Counter(q for listed in per_email for q in listed)
    assert set(seen) == {f"q-{n:06d}" for n in range(1, 1_201)} and set(seen.values()) == {1}, "each exactly once"
    assert unreported(tenant) == 0


def test_an_email_past_its_byte_budget_lists_fewer_entries_and_the_rest_come_next(
    make_tenant: Callable[..., Tenant], redis_client: Redis
) -> None:
    tenant = make_tenant(technical_contacts=(CONTACT,))
    # Values near the column's 1,123 characters, made of what HTML escaping grows most.
    flood(tenant, failures=10, quarantines=100, value='"&<>' * 270, message="x" * 100_000)
    budget = 256 * 1024
    with MailServer() as mail:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=mail.port, report_max_bytes=budget)
        outcomes: list[ReportOutcome] = []
        while unreported(tenant) and len(outcomes) < 10:
            outcomes += run_reports(1, settings, redis_client, tenant)

    emails = mail.for_recipient(CONTACT)
    assert all(e.size <= budget for e in emails), [e.size for e in emails]
    assert 1 < len(emails) < 10 and outcomes[0].conflicts < 100
    listed = [q for e in emails for q in listed_quarantines(e)]
    assert sorted(listed) == [f"q-{n:06d}" for n in range(1, 101)], "every quarantine once, none skipped"
    first = plain(emails[0])
    assert f"the other {100 - outcomes[0].conflicts} come in the next reports" in first
    assert f"(/report/{tenant.name})" in first, "without REPORT_BASE_URL the email still says where to look"
    assert "x…" in first and "x" * 500 not in first, "a 100,000-character failure message is cut to 500"
