"""Deliver an email through the configured SMTP server over verified TLS, or to the log when none is set.

Every way delivery can fail becomes a `MailNotSent` that says what went wrong and which setting fixes
it. `RelayUnusable` means nothing can go through the relay as configured (connection, TLS, login),
so a caller stops trying; `MessageRefused` means the relay refused this one message (its recipients,
its size), so other tenants' reports may still go.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from shared.reports.tls import CaFileUnusable, client_context, explain_certificate
from shared.settings import Settings

log = logging.getLogger(__name__)


class MailNotSent(Exception):
    """The report was not delivered; the message says why, in an operator's words."""


class RelayUnusable(MailNotSent):
    """No message can go through the relay as configured."""


class MessageRefused(MailNotSent):
    """The relay refused this message; another one may still go."""


def deliver(message: EmailMessage, settings: Settings) -> str:
    """Send `message`; return where it went. Raises `MailNotSent` so nothing is marked sent."""
    if not settings.smtp_host or not message["To"]:
        body = message.get_body(("plain",))
        why = "SMTP_HOST is not set" if not settings.smtp_host else "the tenant has no technical contact"
        log.warning("%s; %s:\n%s", why, message["Subject"], body.get_content() if body else "")
        return "log"
    host, port, mode = settings.smtp_host, settings.smtp_port_number, settings.smtp_tls_mode
    relay = f"the SMTP server {host}:{port}"
    if settings.smtp_username and mode == "none" and not settings.smtp_allow_plaintext_login:
        raise RelayUnusable(
            f"refusing to log in to {relay} as SMTP_USERNAME={settings.smtp_username} over an unencrypted "
            "connection: set SMTP_TLS=starttls or SMTP_TLS=implicit, or SMTP_ALLOW_PLAINTEXT_LOGIN=true "
            "if the relay is on a network you trust"
        )
    try:
        context = None if mode == "none" else client_context(settings.smtp_ca_file)
        with _connect(host, port, mode, context, settings.smtp_timeout_s) as smtp:
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password or "")
            smtp.send_message(message)
    except CaFileUnusable as exc:
        raise RelayUnusable(str(exc)) from exc
    except ssl.SSLCertVerificationError as exc:
        raise RelayUnusable(explain_certificate(exc, host, port, settings.smtp_ca_file)) from exc
    except ssl.SSLError as exc:
        hint = (
            "is SMTP_PORT the relay's implicit-TLS port (usually 465)? A relay that upgrades with STARTTLS "
            "(usually on 587) needs SMTP_TLS=starttls"
            if mode == "implicit"
            else "the relay and syncguard agree on no TLS version or cipher (syncguard needs TLS 1.2 or later)"
        )
        raise RelayUnusable(f"the TLS handshake with {relay} failed ({exc.reason or exc}): {hint}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        hint = (
            "SMTP_TLS=starttls needs a relay that offers STARTTLS (for one that speaks TLS from the start, "
            "SMTP_TLS=implicit on its SMTPS port)"
            if "STARTTLS" in str(exc)
            else "check SMTP_USERNAME: this relay takes no login"
        )
        raise RelayUnusable(f"{relay} does not support what the settings ask for ({exc}): {hint}") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise RelayUnusable(
            f"{relay} refused the login of SMTP_USERNAME={settings.smtp_username}: {_reply(exc)}; "
            "check SMTP_USERNAME and SMTP_PASSWORD"
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        refused = "; ".join(f"{who}: {_reply_of(code, text)}" for who, (code, text) in exc.recipients.items())
        raise MessageRefused(f"{relay} refused every recipient of the report ({refused})") from exc
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        if exc.smtp_code == 552 or isinstance(exc, smtplib.SMTPDataError):
            raise MessageRefused(
                f"{relay} refused the report ({len(message.as_bytes())} bytes): {_reply(exc)}"
                + ("; lower REPORT_MAX_BYTES below the relay's limit" if exc.smtp_code == 552 else "")
            ) from exc
        raise RelayUnusable(f"{relay} refused the sender SMTP_FROM={settings.smtp_from}: {_reply(exc)}") from exc
    except smtplib.SMTPResponseException as exc:
        raise RelayUnusable(f"{relay} answered {_reply(exc)}") from exc
    except OSError as exc:
        raise RelayUnusable(f"could not reach {relay}: {exc}") from exc
    return f"smtp://{host}:{port}"


def _connect(host: str, port: int, mode: str, context: ssl.SSLContext | None, timeout: float) -> smtplib.SMTP:
    if mode == "implicit":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    smtp = smtplib.SMTP(host, port, timeout=timeout)
    if mode == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return _reply_of(exc.smtp_code, exc.smtp_error)


def _reply_of(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {said}".strip()
