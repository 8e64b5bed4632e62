"""Real SMTP servers (aiosmtpd) for the mail tests: plain, STARTTLS or implicit TLS, with or without a
login and a message-size limit, and self-signed certificates made by the `openssl` command.

The `cryptography` package is not a dependency of the project, and the `openssl` command is on every
machine the tests run on, so it makes the certificates.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harness.local_services import free_port


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed_certificate(directory: Path, name: str, *subject_alt_names: str) -> Certificate:
    """A self-signed server certificate (P-256, valid two days) holding `subject_alt_names`."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}"]
        + ["-addext", "subjectAltName=" + ",".join(subject_alt_names)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return Certificate(cert, key)


@dataclass
class Received:
    message: Any
    over_tls: bool
    size: int


@dataclass
class Login:
    username: str
    password: str
    over_tls: bool


@dataclass
class MailServer:
    """An aiosmtpd server on loopback that keeps what it accepted and every login it saw."""

    tls: Literal["none", "starttls", "implicit"] = "none"
    certificate: Certificate | None = None
    data_size_limit: int | None = None
    accept_login: tuple[str, str] | None = None
    auth_require_tls: bool = True
    refuse_recipients: tuple[str, ...] = ()
    received: list[Received] = field(default_factory=list)
    logins: list[Login] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.port = free_port()
        options: dict[str, Any] = {"auth_require_tls": self.auth_require_tls}
        if self.data_size_limit is not None:
            options["data_size_limit"] = self.data_size_limit
        if self.tls != "none":
            assert self.certificate is not None, "a TLS server needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certificate.cert, self.certificate.key)
            options["ssl_context" if self.tls == "implicit" else "tls_context"] = context
        if self.accept_login:
            options["authenticator"] = self._authenticate
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login = Login(auth_data.login.decode(), auth_data.password.decode(), _over_tls(server))
        self.logins.append(login)
        return AuthResult(success=(login.username, login.password) == self.accept_login)

    def __enter__(self) -> MailServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()

    def for_recipient(self, address: str) -> list[Received]:
        return [r for r in self.received if address in str(r.message["To"])]


def _over_tls(server: Any) -> bool:
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


class _Handler:
    def __init__(self, mail: MailServer) -> None:
        self.mail = mail

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.mail.refuse_recipients:
            self.mail.refusals.append(address)
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.content
        message = message_from_bytes(content, policy=policy.default)
        self.mail.received.append(Received(message, _over_tls(server), len(content)))
        return "250 OK"
