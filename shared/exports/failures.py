"""Failed exports: kept per object until a later export of it succeeds, never lost.

The same table is the dead-letter store the Redis transport lacks: an export that ran out of
retries, hit an unexpected error or kept killing its worker is filed here as `ApplyFailed` with its
raw message and attempt count, so an operator can read why and send it again
(`syncguard failures retry`).

Failures are filed in bulk (`record_failures`, `FailureFiling`): a post of 300,000 bad lines files
them a chunk at a time, as plain rows, in a few multi-row statements per chunk. One ORM object per
line, or the exception of each rejection kept to the end, made such a post take a gigabyte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from shared.core.export import ErrorCode, ExportRejected
from shared.store.engine import get_engine
from shared.store.tables import FailedExport, Tenant, failures, utcnow

FLUSH_ROWS = 1000  # failures a post holds before it files them
FLUSH_BYTES = 4 * 1024 * 1024  # ... or this much of their text (a line may be up to 1 MiB)
_LOOKUP_CHUNK = 500  # source anchors per lookup of the rows already on file

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


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """One failure to file, as plain data: no exception (with its traceback and frames) is kept."""

    tenant: str | None
    source_anchor: str | None
    object_class: str | None
    error_code: str
    message: str
    raw: str | None
    attempts: int = 1

    @classmethod
    def of(cls, rejected: ExportRejected, attempts: int = 1) -> FailureRecord:
        return cls(
            rejected.tenant,
            rejected.source_anchor,
            rejected.object_class,
            rejected.code.value,
            _storable(rejected.message) or "",
            _storable(rejected.raw),
            attempts,
        )

    @property
    def size(self) -> int:
        return len(self.message) + len(self.raw or "")


@dataclass(slots=True)
class _Filed:
    """What one object's failure row becomes: its content, from the newest export, and the attempts added."""

    row_id: int | None
    sequence: int | None
    content: FailureRecord | None = None
    added: int = 0


def record_failures(connection: Connection, records: Sequence[FailureRecord]) -> None:
    """File failures in bulk: against their object when they name one, counting repeats.

    The same rules as filing them one by one, in order: an object keeps one row, whose attempts add
    up and whose message is the newest export's (an older export failing after a newer one only
    adds to the count, since the newer message is the one a retry must send). A failure that names
    no object gets a row of its own.
    """
    if not records:
        return
    now = utcnow()
    filed = _rows_on_file(connection, {key for r in records if (key := _object_of(r)) is not None})
    loose: list[FailureRecord] = []
    for record in records:
        key = _object_of(record)
        if key is None:
            loose.append(record)
            continue
        state = filed.setdefault(key, _Filed(None, None))
        sequence = sequence_of(record.raw)
        if state.sequence is None or sequence is None or sequence >= state.sequence:
            state.content, state.sequence = record, sequence
        state.added += record.attempts
    new = [_new_row(s.content, now, s.added) for s in filed.values() if s.row_id is None and s.content is not None]
    new += [_new_row(record, now, record.attempts) for record in loose]
    if new:
        connection.execute(insert(failures), new)
    replaced = [_replacement(s, now) for s in filed.values() if s.row_id is not None and s.content is not None]
    counted = [
        {"row_id": s.row_id, "added": s.added, "now": now}
        for s in filed.values()
        if s.row_id is not None and s.content is None and s.added
    ]
    row_id = failures.c.id == bindparam("row_id")
    if replaced:
        connection.execute(
            update(failures)
            .where(row_id)
            .values(
                object_class=bindparam("new_object_class"),
                error_code=bindparam("new_error_code"),
                message=bindparam("new_message"),
                raw=bindparam("new_raw"),
                last_failed=bindparam("now"),
                attempts=failures.c.attempts + bindparam("added"),
            ),
            replaced,
        )
    if counted:
        connection.execute(
            update(failures)
            .where(row_id)
            .values(last_failed=bindparam("now"), attempts=failures.c.attempts + bindparam("added")),
            counted,
        )


def _object_of(record: FailureRecord) -> tuple[str, str] | None:
    """The object a failure is filed against: its tenant and source anchor, when it names both."""
    return (record.tenant, record.source_anchor) if record.tenant and record.source_anchor else None


def _rows_on_file(connection: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Filed]:
    """The row each (tenant, source anchor) already has, with its message's sequence."""
    found: dict[tuple[str, str], _Filed] = {}
    tenants = sorted({tenant for tenant, _ in keys})
    anchors = sorted({anchor for _, anchor in keys})
    for start in range(0, len(anchors), _LOOKUP_CHUNK):
        rows = connection.execute(
            select(failures.c.id, failures.c.tenant, failures.c.source_anchor, failures.c.raw)
            .where(failures.c.tenant.in_(tenants), failures.c.source_anchor.in_(anchors[start : start + _LOOKUP_CHUNK]))
            .order_by(failures.c.id)
        )
        for row in rows:
            key = (row.tenant, row.source_anchor)
            if key in keys and key not in found:
                found[key] = _Filed(row.id, sequence_of(row.raw))
    return found


def _new_row(record: FailureRecord, now: datetime, attempts: int) -> dict[str, Any]:
    return {
        "tenant": record.tenant,
        "source_anchor": record.source_anchor,
        "object_class": record.object_class,
        "error_code": record.error_code,
        "message": record.message,
        "raw": record.raw,
        "first_failed": now,
        "last_failed": now,
        "attempts": attempts,
    }


def _replacement(state: _Filed, now: datetime) -> dict[str, Any]:
    assert state.content is not None
    return {
        "row_id": state.row_id,
        "new_object_class": state.content.object_class,
        "new_error_code": state.content.error_code,
        "new_message": state.content.message,
        "new_raw": state.content.raw,
        "now": now,
        "added": state.added,
    }


def record_failure(session: Session, rejected: ExportRejected, attempts: int = 1) -> None:
    """File one failure, by the rules of `record_failures`, in the session's transaction."""
    record_failures(session.connection(), [FailureRecord.of(rejected, attempts)])


@dataclass(slots=True)
class FailureFiling:
    """Failures filed as they come, a chunk at a time, so a post with any number of bad lines holds at
    most FLUSH_ROWS of them (or FLUSH_BYTES of their text) in memory. Each chunk commits on its own."""

    database_url: str
    pending: list[FailureRecord] = field(default_factory=list)
    pending_bytes: int = 0

    def add(self, record: FailureRecord) -> None:
        self.pending.append(record)
        self.pending_bytes += record.size
        if len(self.pending) >= FLUSH_ROWS or self.pending_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with get_engine(self.database_url).begin() as connection:
            record_failures(connection, self.pending)
        self.pending, self.pending_bytes = [], 0


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


def record_dead_letter(session: Session, message: Any, reason: str, attempts: int) -> None:
    """Keep an export that could not be applied, with why and how often it was tried."""
    rejected = ExportRejected(ErrorCode.APPLY_FAILED, reason, raw=message_text(message), **identity_of(message))
    record_failure(session, rejected, attempts=attempts)


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


def retry_messages(
    database_url: str,
    tenant: str,
    source_anchor: str | None = None,
    page: int = 500,
    failure_ids: Collection[int] | None = None,
) -> Iterator[str]:
    """The messages of the tenant's failed exports (as `retry_candidates`), read a page at a time.

    A retry of any number of failures holds one page, and no read stays open while the retry files
    failures anew. Only failures on file when the read began are sent: one the retry itself files
    (a line still invalid, under a new row) is not sent again by the same retry. `failure_ids` narrows
    the retry to those rows (the web report's buttons); an id of another tenant matches nothing.
    """
    scope = [failures.c.tenant == tenant, failures.c.raw.is_not(None)]
    if source_anchor is not None:
        scope.append(failures.c.source_anchor == source_anchor)
    if failure_ids is not None:
        scope.append(failures.c.id.in_(sorted(set(failure_ids))))
    engine = get_engine(database_url)
    with engine.connect() as connection:
        ceiling = connection.scalar(select(func.max(failures.c.id)).where(*scope))
    if ceiling is None:
        return
    scope.append(failures.c.id <= ceiling)
    after: tuple[datetime, int] | None = None
    while True:
        query = select(failures.c.id, failures.c.first_failed, failures.c.raw).where(*scope)
        if after is not None:
            first_failed, row_id = after
            query = query.where(
                or_(
                    failures.c.first_failed > first_failed,
                    and_(failures.c.first_failed == first_failed, failures.c.id > row_id),
                )
            )
        with engine.connect() as connection:
            rows = connection.execute(query.order_by(failures.c.first_failed, failures.c.id).limit(page)).all()
        for row in rows:
            yield row.raw or ""
        if len(rows) < page:
            return
        after = (rows[-1].first_failed, rows[-1].id)


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
