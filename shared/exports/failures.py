"""Failed exports: kept per object until a later export of it succeeds, never lost.

The same table is the dead-letter store the Redis transport lacks: an export that ran out of
retries, hit an unexpected error or kept killing its worker is filed here as `ApplyFailed` with its
raw message and attempt count, so an operator can read why and send it again
(`syncguard failures retry`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, delete, or_, select
from sqlalchemy.orm import Session

from shared.core.export import ErrorCode, ExportRejected
from shared.store.tables import FailedExport, Tenant, failures, utcnow

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable(text: str | None) -> str | None:
    """PostgreSQL text holds neither NUL nor lone surrogates; keep the evidence visible, escaped."""
    if text is None:
        return None
    text = text.replace("\x00", "\\u0000")
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def sequence_of(raw: str | None) -> int | None:
    """The export's sequence, when the raw message is JSON that has one."""
    try:
        sequence = json.loads(raw or "").get("sequence")
    except (ValueError, AttributeError, RecursionError):
        return None
    return sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None


def record_failure(session: Session, rejected: ExportRejected, attempts: int = 1) -> FailedExport:
    """File the failure against its object when it names one; count repeats, keep the newest export.

    An older export failing after a newer one only adds to the count: the stored message stays the
    newest, since that is the one a retry must send.
    """
    now = utcnow()
    existing = None
    if rejected.tenant and rejected.source_anchor:
        existing = session.scalars(
            select(FailedExport)
            .where(FailedExport.tenant == rejected.tenant, FailedExport.source_anchor == rejected.source_anchor)
            .limit(1)
        ).first()
    if existing is None:
        existing = FailedExport(
            tenant=rejected.tenant,
            source_anchor=rejected.source_anchor,
            first_failed=now,
            attempts=0,
        )
        session.add(existing)
    stored_sequence, new_sequence = sequence_of(existing.raw), sequence_of(rejected.raw)
    if stored_sequence is None or new_sequence is None or new_sequence >= stored_sequence:
        existing.object_class = rejected.object_class
        existing.error_code = rejected.code.value
        existing.message = _storable(rejected.message) or ""
        existing.raw = _storable(rejected.raw)
    existing.last_failed = now
    existing.attempts += attempts
    session.flush()
    return existing


def message_text(message: Any) -> str:
    """The message as it travelled: JSON for a decoded one, the text itself otherwise."""
    if isinstance(message, str):
        return message
    if isinstance(message, bytes):
        return message.decode("utf-8", "replace")
    return json.dumps(message, ensure_ascii=False, default=str)


def identity_of(message: Any) -> dict[str, str | None]:
    """Whatever names the object, so a dead letter is filed against it (and cleared by its next success)."""
    decoded = message
    if isinstance(message, str | bytes):
        try:
            decoded = json.loads(message)
        except (ValueError, RecursionError):
            decoded = None
    if not isinstance(decoded, dict):
        decoded = {}

    def text(name: str) -> str | None:
        value = decoded.get(name)
        usable = isinstance(value, str) and 0 < len(value) <= 256 and not _UNSTORABLE.search(value)
        return value if usable else None

    return {"tenant": text("tenant"), "source_anchor": text("sourceAnchor"), "object_class": text("objectClass")}


def record_dead_letter(session: Session, message: Any, reason: str, attempts: int) -> FailedExport:
    """Keep an export that could not be applied, with why and how often it was tried."""
    rejected = ExportRejected(ErrorCode.APPLY_FAILED, reason, raw=message_text(message), **identity_of(message))
    return record_failure(session, rejected, attempts=attempts)


def unattributed(session: Session) -> list[FailedExport]:
    """Failures no tenant's list shows: not even JSON, or filed under a tenant that does not exist."""
    known = select(Tenant.name)
    return list(
        session.scalars(
            select(FailedExport)
            .where(or_(FailedExport.tenant.is_(None), FailedExport.tenant.not_in(known)))
            .order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
        )
    )


def retry_candidates(session: Session, tenant: str, source_anchor: str | None = None) -> list[FailedExport]:
    """The tenant's failed exports that kept their message, oldest failure first."""
    query = select(FailedExport).where(FailedExport.tenant == tenant, FailedExport.raw.is_not(None))
    if source_anchor is not None:
        query = query.where(FailedExport.source_anchor == source_anchor)
    return list(session.scalars(query.order_by(FailedExport.first_failed, FailedExport.id)))


def clear_failures(connection: Connection, tenant: str, source_anchor: str, applied_sequence: int) -> None:
    """A successful export of the object ends the failures it supersedes: they leave the report.

    A failure of a *newer* export stays: an older export applied late (out of order) does not put
    the object in the state the failed one asked for, and its message is the one to send again.
    """
    filed = connection.execute(
        select(failures.c.id, failures.c.raw).where(
            failures.c.tenant == tenant, failures.c.source_anchor == source_anchor
        )
    ).all()
    superseded = [row.id for row in filed if (sequence_of(row.raw) or 0) <= applied_sequence]
    if superseded:
        connection.execute(delete(failures).where(failures.c.id.in_(superseded)))
