"""The error report over verified TLS: real aiosmtpd servers with self-signed certificates made here.

An untrusted certificate, a certificate for another name, a relay without STARTTLS and a login over
plain text each stop the report with a reason that names the setting to change, send nothing, and
mark nothing: the quarantine is in the next report that does go out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis import Redis

from shared.exports.applier import ExportApplier
from shared.locks.manager import LockManager
from shared.reports.sending import ReportOutcome, ReportsNotSent, send_error_reports
from shared.settings import Settings
from shared.store.tables import Tenant
from tests.conftest import export_line
from tests.shared.smtp_servers import Certificate, Login, MailServer, self_signed_certificate
from tests.shared.test_cli import syncguard

CONTACT = "admins@contoso.test"


@pytest.fixture(scope="module")
def local_cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """For the names the tests connect by: 127.0.0.1 and localhost."""
    return self_signed_certificate(tmp_path_factory.mktemp("certs"), "localhost", "DNS:localhost", "IP:127.0.0.1")


@pytest.fixture(scope="module")
def elsewhere_cert(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Valid, but for another host."""
    return self_signed_certificate(tmp_path_factory.mktemp("certs"), "elsewhere", "DNS:mail.elsewhere.test")


@pytest.fixture
def waiting(make_tenant: Callable[..., Tenant], applier: ExportApplier) -> Tenant:
    """A tenant with one new quarantine to report: Wanda waits for a UPN Hugo holds."""
    tenant = make_tenant(technical_contacts=(CONTACT,))
    applier.apply(export_line(tenant.name, "h", displayName="Hugo Holder", userPrincipalName="q@contoso.com"))
    applier.apply(export_line(tenant.name, "w", displayName="Wanda Waiter", userPrincipalName="q@contoso.com"))
    return tenant


def send(tenant: Tenant, redis: Redis, mail: MailServer, **settings: object) -> list[ReportOutcome]:
    options: dict[str, object] = {"smtp_host": "127.0.0.1", "smtp_port": mail.port, **settings}
    return send_error_reports(Settings(**options), LockManager(redis), tenant.name)  # type: ignore[arg-type]


def refusal(tenant: Tenant, redis: Redis, mail: MailServer, **settings: object) -> str:
    with pytest.raises(ReportsNotSent) as refused:
        send(tenant, redis, mail, **settings)
    assert refused.value.sent == []
    return str(refused.value)


def the_report(mail: MailServer) -> str:
    (received,) = mail.for_recipient(CONTACT)
    assert received.over_tls, "the report went over TLS"
    body = received.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def test_report_send_exits_1_naming_an_untrusted_certificate_and_marks_nothing(
    waiting: Tenant, local_cert: Certificate
) -> None:
    with MailServer("starttls", local_cert) as mail:
        smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mail.port), "SMTP_TLS": "starttls"}
        refused = syncguard("report", "send", "--tenant", waiting.name, **smtp)
        assert refused.returncode == 1, refused.stdout
        assert "the SMTP server's certificate is not trusted: self-signed certificate" in refused.stderr
        assert "set SMTP_CA_FILE" in refused.stderr and "Traceback" not in refused.stderr
        assert mail.received == [], "nothing went out over an unverified connection"

        trusted = syncguard("report", "send", "--tenant", waiting.name, SMTP_CA_FILE=str(local_cert.cert), **smtp)
        assert trusted.returncode == 0, trusted.stderr
        assert "Wanda Waiter" in the_report(mail), "the refused run marked nothing reported"


def test_the_system_trust_store_is_the_default_so_ssl_cert_file_works(waiting: Tenant, local_cert: Certificate) -> None:
    with MailServer("implicit", local_cert) as mail:
        smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(mail.port), "SMTP_TLS": "implicit"}
        done = syncguard("report", "send", "--tenant", waiting.name, SSL_CERT_FILE=str(local_cert.cert), **smtp)
    assert done.returncode == 0, done.stderr
    assert "Wanda Waiter" in the_report(mail)


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_relay_trusted_through_smtp_ca_file_gets_the_report_and_the_login_over_tls(
    tls: str, waiting: Tenant, local_cert: Certificate, redis_client: Redis
) -> None:
    # aiosmtpd counts only STARTTLS as TLS for AUTH; over implicit TLS `Login.over_tls` checks the socket.
    server = MailServer(tls, local_cert, accept_login=("reports", "s3cret"), auth_require_tls=tls == "starttls")  # type: ignore[arg-type]
    with server as mail:
        (outcome,) = send(
            waiting,
            redis_client,
            mail,
            smtp_tls=tls,
            smtp_ca_file=str(local_cert.cert),
            smtp_username="reports",
            smtp_password="s3cret",
        )
    assert outcome.conflicts == 1 and outcome.delivered_to == f"smtp://127.0.0.1:{mail.port}"
    assert "Wanda Waiter" in the_report(mail)
    assert mail.logins == [Login("reports", "s3cret", over_tls=True)]


def test_the_older_smtp_starttls_means_verified_starttls(
    waiting: Tenant, local_cert: Certificate, redis_client: Redis
) -> None:
    with MailServer("starttls", local_cert) as mail:
        assert "certificate is not trusted" in refusal(waiting, redis_client, mail, smtp_starttls=True)
        send(waiting, redis_client, mail, smtp_starttls=True, smtp_ca_file=str(local_cert.cert))
    assert "Wanda Waiter" in the_report(mail)
    with pytest.raises(ValidationError, match="SMTP_STARTTLS=true contradicts SMTP_TLS=none"):
        Settings(smtp_starttls=True, smtp_tls="none")


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_a_certificate_for_another_host_name_is_refused(
    tls: str, waiting: Tenant, elsewhere_cert: Certificate, redis_client: Redis
) -> None:
    with MailServer(tls, elsewhere_cert) as mail:  # type: ignore[arg-type]
        reason = refusal(waiting, redis_client, mail, smtp_tls=tls, smtp_ca_file=str(elsewhere_cert.cert))
    assert "certificate does not hold the name it was reached by (SMTP_HOST=127.0.0.1)" in reason
    assert "mismatch" in reason and mail.received == []


def test_a_login_without_tls_is_refused_unless_a_setting_allows_it(waiting: Tenant, redis_client: Redis) -> None:
    with MailServer("none", accept_login=("reports", "s3cret"), auth_require_tls=False) as mail:
        login = {"smtp_username": "reports", "smtp_password": "s3cret"}
        reason = refusal(waiting, redis_client, mail, **login)
        assert "refusing to log in" in reason and "unencrypted" in reason and "SMTP_ALLOW_PLAINTEXT_LOGIN" in reason
        assert mail.logins == [] and mail.received == [], "the password never went out"

        (outcome,) = send(waiting, redis_client, mail, smtp_allow_plaintext_login=True, **login)
    assert outcome.conflicts == 1 and mail.logins == [Login("reports", "s3cret", over_tls=False)]


def test_starttls_never_falls_back_to_plain_text(waiting: Tenant, redis_client: Redis) -> None:
    with MailServer("none") as mail:
        reason = refusal(waiting, redis_client, mail, smtp_tls="starttls")
    assert "STARTTLS" in reason and "SMTP_TLS=starttls needs a relay that offers STARTTLS" in reason
    assert mail.received == []


def test_implicit_tls_to_a_plain_port_says_which_port_to_use(waiting: Tenant, redis_client: Redis) -> None:
    with MailServer("none") as mail:
        reason = refusal(waiting, redis_client, mail, smtp_tls="implicit")
    assert "TLS handshake" in reason and "465" in reason and mail.received == []


def test_an_unreadable_ca_file_is_named(
    waiting: Tenant, local_cert: Certificate, redis_client: Redis, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with MailServer("starttls", local_cert) as mail:
        reason = refusal(waiting, redis_client, mail, smtp_tls="starttls", smtp_ca_file=str(missing))
    assert f"SMTP_CA_FILE={missing} cannot be used as a CA file" in reason and mail.received == []
