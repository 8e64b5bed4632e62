"""Deliver an email through the configured SMTP server, or to the log when none is configured."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from shared.settings import Settings

log = logging.getLogger(__name__)


def deliver(message: EmailMessage, settings: Settings) -> str:
    """Send `message`; return where it went. Raises on SMTP failure so nothing is marked sent."""
    if not settings.smtp_host or not message["To"]:
        body = message.get_body(("plain",))
        why = "SMTP_HOST is not set" if not settings.smtp_host else "the tenant has no technical contact"
        log.warning("%s; %s:\n%s", why, message["Subject"], body.get_content() if body else "")
        return "log"
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)
    return f"smtp://{settings.smtp_host}:{settings.smtp_port}"
