"""The TLS side of mail delivery: a verifying client context, and certificate failures said plainly.

`ssl.create_default_context()` checks the certificate chain and the host name and refuses TLS below
1.2; without SMTP_CA_FILE it trusts the system store, which OpenSSL finds through SSL_CERT_FILE and
SSL_CERT_DIR when they are set. With SMTP_CA_FILE it trusts that file alone: a relay with a private CA
is then trusted for exactly that CA, not for every public one as well.
"""

from __future__ import annotations

import ssl

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH (x509_vfy.h).
_NAME_MISMATCH_CODES = frozenset({62, 64})


class CaFileUnusable(Exception):
    """SMTP_CA_FILE names a file that is missing or holds no certificate."""


def client_context(ca_file: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CaFileUnusable(f"SMTP_CA_FILE={ca_file} cannot be used as a CA file: {reason}") from exc


def explain_certificate(exc: ssl.SSLCertVerificationError, host: str, port: int, ca_file: str | None) -> str:
    """What is wrong with the relay's certificate, and which setting fixes it."""
    detail = exc.verify_message or str(exc)
    if exc.verify_code in _NAME_MISMATCH_CODES:
        return (
            f"the SMTP server's certificate does not hold the name it was reached by (SMTP_HOST={host}): {detail}; "
            "set SMTP_HOST to a name the certificate holds"
        )
    trusted = f"the CAs in SMTP_CA_FILE={ca_file}" if ca_file else "the system trust store (or SSL_CERT_FILE)"
    return (
        f"the SMTP server's certificate is not trusted: {detail} ({host}:{port}, checked against {trusted}); "
        "if the relay's certificate comes from a private CA, set SMTP_CA_FILE to that CA's PEM file"
    )
