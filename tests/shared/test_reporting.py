"""Error reports on a real SMTP server: each quarantine once, failures every time, tenants apart."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import pytest
from redis import Redis

from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.reports.sending import ReportsNotSent, report_lock_key, send_error_reports
from shared.settings import Settings
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.services import MailCatcher
from tests.shared.smtp_servers import MailServer


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    with MailCatcher() as catcher:
        yield catcher


@pytest.fixture
def report(mail: MailCatcher, redis_client: Redis) -> Callable[[str], list[str]]:
    settings = Settings(smtp_host="127.0.0.1", smtp_port=mail.port, smtp_from="reports@syncguard.test")
    locks = LockManager(redis_client)

    def run(tenant: str) -> list[str]:
        return [o.describe() for o in send_error_reports(settings, locks, tenant)]

    return run


def bodies(message: EmailMessage) -> tuple[str, str]:
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None, "a report is multipart: plain text and HTML"
    return text.get_content(), html.get_content()


def test_each_new_quarantine_is_mailed_once_and_a_legacy_failure_every_time(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, mail: MailCatcher, report: Callable[[str], list[str]]
) -> None:
    tenant = make_tenant(technical_contacts=("it@contoso.test",), proxy_resiliency=False)
    applier.apply(
        export_line(
            tenant.name,
            "holder",
            displayName="Ann Holder",
            userPrincipalName="ann@contoso.com",
            proxyAddresses=["SMTP:ann@contoso.com", "smtp:team@contoso.com"],
        )
    )
    applier.apply(export_line(tenant.name, "second", displayName="Ann Second", userPrincipalName="ann@contoso.com"))
    applier.apply(
        export_line(tenant.name, "grp", "Group", displayName="Team", proxyAddresses=["SMTP:team@contoso.com"])
    )

    report(tenant.name)
    (first,) = mail.for_recipient("it@contoso.test")
    text, html = bodies(first)
    assert "Ann Second" in text and "ann@contoso.com" in text and "Ann Holder" in text and "UserPrincipalName" in text
    assert "AttributeValueMustBeUnique" in text and "grp" in text
    assert first["From"] == "reports@syncguard.test"

    report(tenant.name)
    second = mail.for_recipient("it@contoso.test")[1]
    text, _ = bodies(second)
    assert "Ann Second" not in text, "a quarantine is reported only once"
    assert "AttributeValueMustBeUnique" in text, "a legacy failure is reported until fixed"

    applier.apply(export_line(tenant.name, "grp", "Group", sequence=2, proxyAddresses=["SMTP:team2@contoso.com"]))
    assert report(tenant.name) == [f"{tenant.name}: nothing new to report"]
    assert len(mail.for_recipient("it@contoso.test")) == 2, "nothing new: no email"


def test_a_report_for_one_tenant_never_mentions_another(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, mail: MailCatcher, report: Callable[[str], list[str]]
) -> None:
    a = make_tenant(technical_contacts=("a@a.test",))
    b = make_tenant(technical_contacts=("b@b.test",))
    for t, who in ((a, "Alpha"), (b, "Bravo")):
        applier.apply(export_line(t.name, "one", displayName=f"{who} One", userPrincipalName="same@contoso.com"))
        applier.apply(export_line(t.name, "two", displayName=f"{who} Two", userPrincipalName="same@contoso.com"))
    report(a.name)
    report(b.name)
    (to_a,) = mail.for_recipient("a@a.test")
    (to_b,) = mail.for_recipient("b@b.test")
    assert "Alpha Two" in bodies(to_a)[0] and "Bravo" not in to_a.as_string() and b.name not in to_a.as_string()
    assert "Bravo Two" in bodies(to_b)[0] and "Alpha" not in to_b.as_string()


def test_the_html_escapes_what_producers_wrote(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, mail: MailCatcher, report: Callable[[str], list[str]]
) -> None:
    tenant = make_tenant(technical_contacts=("sec@contoso.test",))
    applier.apply(export_line(tenant.name, "h", displayName="<b>holder</b>", userPrincipalName="x@contoso.com"))
    applier.apply(
        export_line(tenant.name, "w", displayName="<script>alert(1)</script>", userPrincipalName="x@contoso.com")
    )
    report(tenant.name)
    (message,) = mail.for_recipient("sec@contoso.test")
    _, html = bodies(message)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>holder</b>" not in html and "&lt;b&gt;holder&lt;/b&gt;" in html


def test_a_failed_delivery_marks_nothing_so_the_next_run_sends_it(
    make_tenant: Callable[..., Tenant],
    applier: ExportApplier,
    mail: MailCatcher,
    redis_client: Redis,
    report: Callable[[str], list[str]],
) -> None:
    tenant = make_tenant(technical_contacts=("ops@contoso.test",))
    applier.apply(export_line(tenant.name, "h", userPrincipalName="y@contoso.com"))
    applier.apply(export_line(tenant.name, "w", displayName="Waiting Will", userPrincipalName="y@contoso.com"))
    unreachable = Settings(smtp_host="127.0.0.1", smtp_port=1, smtp_timeout_s=2)
    with pytest.raises(ReportsNotSent, match=f"the report for {tenant.name} was not sent: could not reach"):
        send_error_reports(unreachable, LockManager(redis_client), tenant.name)
    report(tenant.name)
    (message,) = mail.for_recipient("ops@contoso.test")
    assert "Waiting Will" in bodies(message)[0]


def test_a_report_the_relay_refuses_does_not_hold_back_the_other_tenants(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, redis_client: Redis
) -> None:
    refused = make_tenant(f"a-{uuid.uuid4().hex[:10]}", technical_contacts=("gone@contoso.test",))
    later = make_tenant(f"b-{uuid.uuid4().hex[:10]}", technical_contacts=("here@contoso.test",))
    for t in (refused, later):
        applier.apply(export_line(t.name, "h", userPrincipalName="v@contoso.com"))
        applier.apply(export_line(t.name, "w", displayName=f"Waiter of {t.name}", userPrincipalName="v@contoso.com"))
    with MailServer(refuse_recipients=("gone@contoso.test",)) as relay:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=relay.port)
        with pytest.raises(ReportsNotSent) as failed:
            send_error_reports(settings, LockManager(redis_client))
        assert failed.value.reasons == [
            f"the report for {refused.name} was not sent: the SMTP server 127.0.0.1:{relay.port} refused every "
            "recipient of the report (gone@contoso.test: 550 5.1.1 no such mailbox here)"
        ]
        assert later.name in [o.tenant for o in failed.value.sent], "a tenant after the refused one got its report"
        (received,) = relay.for_recipient("here@contoso.test")
        assert f"Waiter of {later.name}" in bodies(received.message)[0]

        relay.refuse_recipients = ()
        (outcome,) = send_error_reports(settings, LockManager(redis_client), refused.name)
    assert outcome.conflicts == 1, "the refused report marked nothing: its quarantine comes in the next one"


def test_a_report_already_being_sent_elsewhere_is_skipped(
    tenant: Tenant, applier: ExportApplier, redis_client: Redis, report: Callable[[str], list[str]]
) -> None:
    locks = LockManager(redis_client)
    key = [report_lock_key(tenant.name)]
    token = locks.try_acquire(key)
    try:
        assert report(tenant.name) == []
    finally:
        locks.release(key, token)
    assert report(tenant.name) == [f"{tenant.name}: nothing new to report"]


def test_without_an_smtp_host_the_report_goes_to_the_log(
    make_tenant: Callable[..., Tenant], applier: ExportApplier, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = make_tenant(technical_contacts=("nobody@contoso.test",))
    applier.apply(export_line(tenant.name, "h", userPrincipalName="z@contoso.com"))
    applier.apply(export_line(tenant.name, "w", displayName="Logged Lou", userPrincipalName="z@contoso.com"))
    with caplog.at_level("WARNING"):
        (outcome,) = send_error_reports(Settings(smtp_host=None), LockManager(redis_client), tenant.name)
    assert outcome.delivered_to == "log" and outcome.conflicts == 1
    assert "Logged Lou" in caplog.text
