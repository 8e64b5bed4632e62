"""A tenant's failed exports a page at a time, filtered, for the web report's tab and its CSV.

The order is `list_failures`' (the most recent failure first, then the newest row), read by keyset
position, so a page stays right while retries clear rows and new failures arrive between pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from shared.queries.provisioning_errors import contains
from shared.store.tables import FailedExport, Tenant


@dataclass(frozen=True, slots=True)
class FailurePosition:
    """The last row shown: its last failure and its row id."""

    last_failed: datetime
    failure_id: int


@dataclass(frozen=True, slots=True)
class FailedExportRow:
    """One failed export as the tab lists it; `retryable` when its message was kept to be sent again."""

    failure_id: int
    source_anchor: str | None
    object_type: str | None
    error_code: str
    message: str
    first_failed: datetime
    last_failed: datetime
    attempts: int
    retryable: bool

    @property
    def position(self) -> FailurePosition:
        return FailurePosition(self.last_failed, self.failure_id)


@dataclass(frozen=True, slots=True)
class FailureFilter:
    """Which failed exports a reader asks for: one error code, and text in the anchor or the message."""

    error_code: str | None = None
    search: str | None = None

    def conditions(self, tenant: Tenant) -> list[ColumnElement[bool]]:
        where = [FailedExport.tenant == tenant.name]
        if self.error_code is not None:
            where.append(FailedExport.error_code == self.error_code)
        if self.search:
            where.append(
                or_(contains(FailedExport.source_anchor, self.search), contains(FailedExport.message, self.search))
            )
        return where


@dataclass(frozen=True, slots=True)
class FailurePage:
    """Rows in display order; `more` says whether rows lie beyond the page in the direction read."""

    rows: list[FailedExportRow]
    more: bool


def list_failure_page(
    session: Session,
    tenant: Tenant,
    wanted: FailureFilter,
    *,
    limit: int,
    after: FailurePosition | None = None,
    backward: bool = False,
) -> FailurePage:
    """Failed exports matching `wanted`, newest failure first; `backward` reads the page before `after`."""
    query = select(
        FailedExport.id,
        FailedExport.source_anchor,
        FailedExport.object_class,
        FailedExport.error_code,
        FailedExport.message,
        FailedExport.first_failed,
        FailedExport.last_failed,
        FailedExport.attempts,
        FailedExport.raw.is_not(None),
    ).where(*wanted.conditions(tenant))
    if after is not None:
        earlier = or_(
            FailedExport.last_failed < after.last_failed,
            and_(FailedExport.last_failed == after.last_failed, FailedExport.id < after.failure_id),
        )
        later = or_(
            FailedExport.last_failed > after.last_failed,
            and_(FailedExport.last_failed == after.last_failed, FailedExport.id > after.failure_id),
        )
        query = query.where(later if backward else earlier)
    if backward:
        query = query.order_by(FailedExport.last_failed.asc(), FailedExport.id.asc())
    else:
        query = query.order_by(FailedExport.last_failed.desc(), FailedExport.id.desc())
    found = list(session.execute(query.limit(limit + 1)))
    more = len(found) > limit
    found = found[:limit]
    if backward:
        found.reverse()
    return FailurePage([FailedExportRow(*row) for row in found], more)


def count_failures_by_code(session: Session, tenant: Tenant, search: str | None = None) -> dict[str, int]:
    """How many failed exports of each error code match `search` (the code filter itself ignored)."""
    rows = session.execute(
        select(FailedExport.error_code, func.count())
        .where(*FailureFilter(search=search).conditions(tenant))
        .group_by(FailedExport.error_code)
    )
    return {code: int(count) for code, count in rows}
