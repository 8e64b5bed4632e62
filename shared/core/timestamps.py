"""Timestamps as every face prints them: ISO-8601 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a `Z`; SQLite hands back naive datetimes, which are UTC by construction."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
